"""What each role may do in the inbox (merged into accounts.roles by roles_sync)."""

from accounts import roles

_WORK = {
    "inbox.view_conversation",
    "inbox.change_conversation",
    "inbox.reply_conversation",
    "inbox.forward_conversation",
    "inbox.view_department",
    "inbox.view_cannedreply",
}

PERMISSIONS: dict[str, set[str]] = {
    roles.ADMIN: {"inbox.*"},
    roles.EDITOR: set(_WORK),
    roles.INBOX_AGENT: set(_WORK),
}
