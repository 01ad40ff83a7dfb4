"""Permissions the roles need for the messenger layer (merged by accounts.roles)."""

from accounts.roles import ADMIN, APPROVER, EDITOR, INBOX_AGENT

PERMISSIONS = {
    ADMIN: {"messengers.*"},
    EDITOR: {
        "messengers.view_connection",
        "messengers.view_whatsapptemplate",
        "messengers.use_sandbox",
        "messengers.view_inboundmessage",
        "messengers.view_contact",
    },
    APPROVER: {"messengers.view_connection", "messengers.use_sandbox"},
    INBOX_AGENT: {"messengers.view_inboundmessage", "messengers.view_contact", "messengers.use_sandbox"},
}
