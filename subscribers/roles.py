"""Permissions the roles need for subscribers (merged by accounts.roles).

Exporting a channel's subscribers and a person's data, and erasing a person, are admin only:
they move or destroy personal data and are audit-logged."""

from accounts.roles import ADMIN, APPROVER, EDITOR, INBOX_AGENT

PERMISSIONS = {
    ADMIN: {"subscribers.*"},
    EDITOR: {
        "subscribers.view_subscriber",
        "subscribers.change_subscriber",
        "subscribers.view_subscription",
        "subscribers.view_consentevent",
        "subscribers.view_consenttext",
        "subscribers.view_district",
        "subscribers.view_poster",
        "subscribers.add_poster",
        "subscribers.view_subscriberimport",
        "subscribers.add_subscriberimport",
        "subscribers.import_subscribers",
    },
    APPROVER: {
        "subscribers.view_subscriber",
        "subscribers.view_subscription",
        "subscribers.view_district",
        "subscribers.view_consentevent",
    },
    INBOX_AGENT: {"subscribers.view_subscriber", "subscribers.view_subscription", "subscribers.view_district"},
}
