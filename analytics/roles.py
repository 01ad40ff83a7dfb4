"""Who may see analytics (merged by accounts.roles).

Administrators, editors and approvers see the figures of broadcasts: they write, approve and
answer for them. Inbox agents do not: they answer citizens, and how a broadcast performed is not
their work (they may open a broadcast a reply refers to, without its figures). The same holds for
the channel figures."""

from accounts.roles import ADMIN, APPROVER, EDITOR

PERMISSIONS = {
    ADMIN: {"analytics.view_broadcaststats", "analytics.view_channelday"},
    EDITOR: {"analytics.view_broadcaststats", "analytics.view_channelday"},
    APPROVER: {"analytics.view_broadcaststats", "analytics.view_channelday"},
}
