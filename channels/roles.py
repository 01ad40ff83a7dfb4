"""Permissions the roles need for channels (merged by accounts.roles)."""

from accounts.roles import ADMIN, APPROVER, EDITOR, INBOX_AGENT

PERMISSIONS = {
    ADMIN: {"channels.*"},
    # The online team runs the channels and raises or ends an alarm.
    EDITOR: {
        "channels.view_channel",
        "channels.change_channel",
        "channels.change_alarm_state",
        "channels.view_alarmstatechange",
    },
    APPROVER: {"channels.view_channel", "channels.view_alarmstatechange"},
    INBOX_AGENT: {"channels.view_channel"},
}
