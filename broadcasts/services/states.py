"""The broadcast states the services share: which states may still be edited, the refusals a
user meets (English templates marked for the catalogue; ApplicationError.localized translates them), and `transition`, the
one way a status changes (always audit-logged)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_noop

from accounts.models import User
from accounts.services import audit_log
from broadcasts.models import Broadcast
from core.http import RequestMeta
from messengers.outgoing.services import outgoing_event_emit

S = Broadcast.Status
EDITABLE = {S.DRAFT, S.SUBMITTED, S.APPROVED, S.REJECTED, S.SCHEDULED}
FINAL = (S.SENT, S.CANCELLED)

NOT_APPROVER = gettext_noop("Only users with the approver role can approve or reject broadcasts.")
NOT_REVIEWER = gettext_noop("Only users with the approver role can review broadcasts sent without approval.")
NOT_EDITOR = gettext_noop("Your role cannot change broadcasts; ask an editor.")
NOT_CONTROLLER = gettext_noop("Your role cannot pause, resume or cancel broadcasts; ask an editor.")
CHANGED_SINCE_OPENED = gettext_noop(
    "This broadcast was changed after you opened it (now revision {revision}); read the new version and approve "
    "it again."
)
WRONG_STATE = gettext_noop("This broadcast is {status}; that step is not possible now.")
NEEDS_CHANNEL = gettext_noop("Choose at least one channel.")
NEEDS_TEXT = gettext_noop("Write the text in at least one language.")
NEEDS_COMMENT = gettext_noop("Say why you reject it; the author sees your comment.")
NOT_EDITABLE = gettext_noop("A broadcast that is {status} can no longer be changed.")
BYPASS_ONLY_ALERTS = gettext_noop(
    "Sending without approval is only possible for alert broadcasts on alert or alarm channels."
)
BYPASS_ONLY_ADMINS = gettext_noop("Only administrators can send without approval.")


def transition(
    broadcast: Broadcast,
    status: str,
    actor: User | None,
    meta: RequestMeta | None,
    *,
    action: str,
    details: dict[str, Any] | None = None,
) -> None:
    before = broadcast.status
    broadcast.status = status
    broadcast.save(update_fields=["status", "updated_at"])
    status_changed_emit(broadcast, before, status)
    audit_log(
        action=action,
        actor=actor,
        target=broadcast,
        meta=meta,
        details={"from": before, "to": status, **(details or {})},
    )


def status_changed_emit(broadcast: Broadcast, before: str, after: str) -> None:
    """Tell the tenant's outgoing webhooks (in the transaction that changed the status)."""
    if before == after:
        return
    outgoing_event_emit(
        event_type="broadcast.status_changed",
        data={"broadcast": {"id": broadcast.pk, "title": broadcast.title}, "from": before, "to": after},
    )
