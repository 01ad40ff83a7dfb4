"""Permissions the roles need for analytics (merged by accounts.roles).

Channel figures are for the people who run the newsletter: admins, editors and approvers. Inbox
agents answer citizens and see none of them."""

from accounts.roles import ADMIN, APPROVER, EDITOR

PERMISSIONS = {
    ADMIN: {"analytics.view_channelday"},
    EDITOR: {"analytics.view_channelday"},
    APPROVER: {"analytics.view_channelday"},
}
