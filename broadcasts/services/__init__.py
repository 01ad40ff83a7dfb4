"""Writes on broadcasts, split by subject; import from here.

composing (create, update, variants, the content hash), workflow (submit, approve, reject, send
without approval, review; the four-eyes rule), actions (the guards of those steps, which the
admin asks too), sending (schedule, start, senders, tick, finish, pause, resume, cancel),
notifications (the workflow's e-mails), status_sink (delivery status webhooks), erasure (GDPR)
and alarms (drafts proposed by alarm channels), templates (is the chosen WhatsApp template
usable), testsend ("send a test to me"). States and refusal texts: states.
What does not belong here: reading (broadcasts.selectors), quiet hours and the due-work index
(broadcasts.schedule), the send path itself (broadcasts.pipeline), link tokens (broadcasts.links).
"""

from broadcasts.services.actions import (
    ACTIONS,
    Refusal,
    broadcast_actions_for,
    broadcast_controls_live,
    broadcast_refusal,
)
from broadcasts.services.alarms import broadcast_propose_for_alarm
from broadcasts.services.composing import (
    KEEP,
    broadcast_content,
    broadcast_content_hash,
    broadcast_create,
    broadcast_update,
)
from broadcasts.services.erasure import deliveries_erase_recipient
from broadcasts.services.sending import (
    broadcast_cancel,
    broadcast_pause,
    broadcast_resume,
    broadcast_send,
    broadcast_start,
    broadcast_tick,
    senders_top_up,
)
from broadcasts.services.states import (
    BYPASS_ONLY_ADMINS,
    BYPASS_ONLY_ALERTS,
    CHANGED_SINCE_OPENED,
    EDITABLE,
    FINAL,
    NEEDS_CHANNEL,
    NEEDS_COMMENT,
    NEEDS_TEXT,
    NOT_APPROVER,
    NOT_CONTROLLER,
    NOT_EDITABLE,
    NOT_EDITOR,
    NOT_REVIEWER,
    WRONG_STATE,
)
from broadcasts.services.status_sink import delivery_apply_statuses
from broadcasts.services.templates import broadcast_template_check
from broadcasts.services.testsend import broadcast_test_send, user_can_send_test
from broadcasts.services.workflow import (
    broadcast_approve,
    broadcast_reject,
    broadcast_review,
    broadcast_send_without_approval,
    broadcast_submit,
)

__all__ = [
    "ACTIONS",
    "BYPASS_ONLY_ADMINS",
    "BYPASS_ONLY_ALERTS",
    "CHANGED_SINCE_OPENED",
    "EDITABLE",
    "FINAL",
    "KEEP",
    "NEEDS_CHANNEL",
    "NEEDS_COMMENT",
    "NEEDS_TEXT",
    "NOT_APPROVER",
    "NOT_CONTROLLER",
    "NOT_EDITABLE",
    "NOT_EDITOR",
    "NOT_REVIEWER",
    "WRONG_STATE",
    "Refusal",
    "broadcast_actions_for",
    "broadcast_template_check",
    "broadcast_test_send",
    "user_can_send_test",
    "broadcast_approve",
    "broadcast_cancel",
    "broadcast_content",
    "broadcast_controls_live",
    "broadcast_content_hash",
    "broadcast_create",
    "broadcast_pause",
    "broadcast_propose_for_alarm",
    "broadcast_refusal",
    "broadcast_reject",
    "broadcast_resume",
    "broadcast_review",
    "broadcast_send",
    "broadcast_send_without_approval",
    "broadcast_start",
    "broadcast_submit",
    "broadcast_tick",
    "broadcast_update",
    "deliveries_erase_recipient",
    "delivery_apply_statuses",
    "senders_top_up",
]
