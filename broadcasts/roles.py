"""Permissions the roles need for broadcasts (merged by accounts.roles)."""

from accounts.roles import ADMIN, APPROVER, EDITOR, INBOX_AGENT

PERMISSIONS = {
    ADMIN: {"broadcasts.*"},
    EDITOR: {
        "broadcasts.add_broadcast",
        "broadcasts.change_broadcast",
        "broadcasts.view_broadcast",
        "broadcasts.view_delivery",
        "broadcasts.control_sending",
    },
    APPROVER: {
        "broadcasts.view_broadcast",
        "broadcasts.change_broadcast",
        "broadcasts.approve_broadcast",
        "broadcasts.review_broadcast",
        "broadcasts.view_delivery",
        "broadcasts.control_sending",
    },
    INBOX_AGENT: {"broadcasts.view_broadcast"},
}
