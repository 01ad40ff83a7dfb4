"""Which workflow step a person may take on a broadcast now, and why not: the one place that
encodes the guards of the state machine (status, role, four-eyes rule).

The services ask it inside their locked transaction and raise its refusal; the admin asks
`broadcast_actions_for` which buttons to show and which four-eyes reason to show instead. What
is checked only when a step is carried out (texts and channels present, a reject comment, the
revision an approver read) stays in the services."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from django.utils import translation

from accounts.models import User
from broadcasts import selectors
from broadcasts.models import Broadcast
from broadcasts.services.states import (
    BYPASS_ONLY_ADMINS,
    BYPASS_ONLY_ALERTS,
    FINAL,
    NOT_APPROVER,
    NOT_CONTROLLER,
    NOT_EDITOR,
    NOT_REVIEWER,
    WRONG_STATE,
    S,
)
from channels.models import Priority
from core.errors import ApplicationError

Action = Literal["submit", "approve", "reject", "bypass", "pause", "resume", "cancel", "review"]
ACTIONS: tuple[Action, ...] = ("submit", "approve", "reject", "bypass", "pause", "resume", "cancel", "review")
# once approved, pause and resume may become possible without the page being reloaded
CONTROL_STATES = (S.APPROVED, S.SCHEDULED, S.SENDING, S.PAUSED)


@dataclass(frozen=True)
class Refusal:
    """Why a step is not possible: `message` in English (the services' error); `conflict` when
    the four-eyes rule refuses it (its `reason` speaks the active language)."""

    message: str
    conflict: selectors.FourEyesConflict | None = None
    # the message's English template and its parameters, so the admin can show it translated
    template: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def error(self) -> ApplicationError:
        """The services' error for this refusal (`localized` in the user's language)."""
        if self.template:
            return ApplicationError(self.template, params=self.params or None)
        return ApplicationError(self.message)

    @property
    def reason(self) -> str:
        """What the admin shows instead of the button: the four-eyes reason, else nothing."""
        return self.conflict.reason if self.conflict else ""


def _wrong_state(broadcast: Broadcast) -> Refusal:
    status = S(broadcast.status).label  # lazy: the localized message names it in the reader's language
    return Refusal(
        WRONG_STATE.format(status=broadcast.get_status_display()), template=WRONG_STATE, params={"status": status}
    )


def _four_eyes(conflict: selectors.FourEyesConflict) -> Refusal:
    with translation.override("en"):
        return Refusal(conflict.reason, conflict)


def _controls(actor: User | None) -> bool:
    """People need the role; the system (None: automatic pause on errors) may always."""
    return actor is None or actor.has_perm("broadcasts.control_sending")


def control_refusal(actor: User | None) -> Refusal | None:
    return None if _controls(actor) else Refusal(NOT_CONTROLLER)


def broadcast_refusal(action: Action, broadcast: Broadcast, actor: User | None) -> Refusal | None:
    """None if `actor` (None: the system) may take `action` on `broadcast` now, else why not."""
    if action == "submit":
        if actor is not None and not actor.has_perm("broadcasts.change_broadcast"):
            return Refusal(NOT_EDITOR)
        return None if broadcast.status in (S.DRAFT, S.REJECTED) else _wrong_state(broadcast)
    if action in ("approve", "reject"):
        if broadcast.status != S.SUBMITTED:
            return _wrong_state(broadcast)
        if not selectors.user_can_approve(actor):
            return Refusal(NOT_APPROVER)
        if action == "reject":
            return None  # rejecting only stops it: open to the author and co-editors too
        conflict = selectors.broadcast_four_eyes_conflict(broadcast, actor)
        return _four_eyes(conflict) if conflict else None
    if action == "bypass":
        if broadcast.status not in (S.DRAFT, S.SUBMITTED, S.REJECTED):
            return _wrong_state(broadcast)
        if actor is None or not actor.has_perm("broadcasts.send_without_approval"):
            return Refusal(BYPASS_ONLY_ADMINS)
        # the channels are checked when it is carried out (broadcast_send_without_approval)
        return None if broadcast.priority == Priority.ALERT else Refusal(BYPASS_ONLY_ALERTS)
    if action in ("pause", "resume", "cancel"):
        if not _controls(actor):
            return Refusal(NOT_CONTROLLER)
        if action == "pause":
            return None if broadcast.status == S.SENDING else _wrong_state(broadcast)
        if action == "resume":
            return None if broadcast.status == S.PAUSED else _wrong_state(broadcast)
        return _wrong_state(broadcast) if broadcast.status in FINAL else None
    # review: the four-eyes check of an emergency bypass, after the fact
    if not broadcast.needs_review:
        return _wrong_state(broadcast)
    if not selectors.user_can_review(actor):
        return Refusal(NOT_REVIEWER)
    conflict = selectors.broadcast_four_eyes_conflict(broadcast, actor, step="review")
    return _four_eyes(conflict) if conflict else None


def broadcast_controls_live(broadcast: Broadcast, user: User | None) -> bool:
    """Whether pause, resume and cancel may switch on for `user` while the page is open (a
    pause shows "resume"): it is approved and not done, and they have the role."""
    return user is not None and broadcast.status in CONTROL_STATES and _controls(user)


def broadcast_actions_for(broadcast: Broadcast, user: User | None) -> dict[Action, Refusal | None]:
    """Every workflow step for a person in the admin: None where they may take it now, else the
    refusal (with the four-eyes reason to show instead of the button). Nobody signed in: none."""
    if user is None:
        return {action: Refusal(NOT_EDITOR) for action in ACTIONS}
    return {action: broadcast_refusal(action, broadcast, user) for action in ACTIONS}
