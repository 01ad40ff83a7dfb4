"""The approval workflow: submit, approve, reject, send without approval (the emergency
bypass) and its review afterwards, with the four-eyes rule enforced inside the locked
transaction (broadcasts.services.actions holds the guards).

Workflow: draft → submitted → approved | rejected → scheduled → sending ⇄ paused → sent;
cancelled from anywhere before sent. Channels without approval skip the step; an administrator
may send an alert without approval (emergency bypass), which flags it for review afterwards.
Approved content is frozen: any change sends it back to `submitted` (composing). Every
transition is audit-logged.

The four-eyes rule: nobody who wrote or changed the content or targeting of a broadcast may
approve it, and nobody who wrote, changed or sent it without approval may review that bypass.
Contributions are never cleared by a later submission, because what a co-editor wrote is still
in the version being approved. Rejecting stays open to co-editors: it only stops a broadcast.
An approval names the revision the approver read, so a change made after they opened the page
cannot be approved by that click.

Actors: every write takes `actor`, the person responsible (None: the system). The coming API
must resolve an API key to the person it acts for and pass that person as `actor` (the key's
label can go into the audit log's details), so a key's edits make that person a co-editor and a
key can never approve what its person wrote or changed — a key is never a second pair of eyes.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_log
from broadcasts.models import Broadcast
from broadcasts.selectors import FourEyesConflict
from broadcasts.services import notifications, sending
from broadcasts.services.actions import broadcast_refusal
from broadcasts.services.composing import broadcast_content_hash
from broadcasts.services.states import (
    BYPASS_ONLY_ALERTS,
    CHANGED_SINCE_OPENED,
    NEEDS_CHANNEL,
    NEEDS_COMMENT,
    NEEDS_TEXT,
    S,
    transition,
)
from channels.models import Priority
from core.errors import ApplicationError
from core.http import RequestMeta

REFUSAL_ACTIONS = {
    "author": "broadcast.self_approval_refused",
    "editor": "broadcast.co_editor_approval_refused",
    "bypasser": "broadcast.self_review_refused",
}


def _validate_for_submit(broadcast: Broadcast) -> None:
    if not broadcast.channels.exists():
        raise ApplicationError(NEEDS_CHANNEL)
    if not broadcast.variants.exclude(body="").exists():
        raise ApplicationError(NEEDS_TEXT)


@transaction.atomic
def broadcast_submit(*, broadcast: Broadcast, actor: User | None, meta: RequestMeta | None = None) -> Broadcast:
    """Ask for approval — or, if none of its channels requires approval, approve right away."""
    broadcast = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
    refusal = broadcast_refusal("submit", broadcast, actor)
    if refusal:
        raise refusal.error()
    _validate_for_submit(broadcast)
    broadcast.submitted_at = timezone.now()
    broadcast.rejection_comment = ""
    if broadcast.author_id is None and actor is not None:
        # A draft nobody wrote (proposed by an alarm state change from a sensor, say): whoever
        # submits it vouches for it, so they count as its author and cannot also approve it.
        broadcast.author = actor
    broadcast.save(update_fields=["submitted_at", "rejection_comment", "author"])
    if not broadcast.channels.filter(requires_approval=True).exists():
        transition(broadcast, S.SUBMITTED, actor, meta, action="broadcast.submitted")
        return _approve(broadcast, actor=None, meta=meta, note="no approval required for these channels")
    transition(broadcast, S.SUBMITTED, actor, meta, action="broadcast.submitted")
    notifications.notify_approvers(broadcast)
    return broadcast


def _four_eyes_refusal(
    conflict: FourEyesConflict, message: str, *, broadcast: Broadcast, actor: User, meta: RequestMeta | None
) -> ApplicationError:
    """Log a refusal under the four-eyes rule and build the error to raise. Called after the
    locked transaction is left, so the refusal stays in the log though the caller raises."""
    action = REFUSAL_ACTIONS[conflict.kind]
    if conflict.step == "review" and conflict.kind != "bypasser":
        action = "broadcast.contributor_review_refused"
    audit_log(
        action=action,
        actor=actor,
        target=broadcast,
        meta=meta,
        details={"changed": list(conflict.changed)} if conflict.changed else None,
    )
    # the admin shows `conflict.reason` in the user's language
    return ApplicationError(message, extra={"conflict": conflict})


def broadcast_approve(
    *, broadcast: Broadcast, actor: User, revision: int | None = None, meta: RequestMeta | None = None
) -> Broadcast:
    """Approve the broadcast: by someone with the approver role who neither wrote nor changed it
    (four-eyes), for the revision they read (`revision`; None: whatever is current — for callers
    that show no content, such as scripts)."""
    with transaction.atomic():
        locked = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
        # read under the lock: an edit (which takes the same lock) is either fully before, and
        # counted here, or after, and then it reopens the approval
        refusal = broadcast_refusal("approve", locked, actor)
        if refusal is None:
            if revision is not None and revision != locked.revision:
                raise ApplicationError(
                    CHANGED_SINCE_OPENED, params={"revision": locked.revision}, extra={"revision": locked.revision}
                )
            return _approve(locked, actor=actor, meta=meta)
        if refusal.conflict is None:
            raise refusal.error()
    raise _four_eyes_refusal(refusal.conflict, refusal.message, broadcast=locked, actor=actor, meta=meta)


def _approve(broadcast: Broadcast, *, actor: User | None, meta: RequestMeta | None, note: str = "") -> Broadcast:
    broadcast.approved_by = actor
    broadcast.approved_at = timezone.now()
    broadcast.approved_content_hash = broadcast_content_hash(broadcast)
    broadcast.save(update_fields=["approved_by", "approved_at", "approved_content_hash"])
    transition(
        broadcast, S.APPROVED, actor, meta, action="broadcast.approved", details={"note": note} if note else None
    )
    sending.schedule_start(broadcast, actor, meta)
    return broadcast


@transaction.atomic
def broadcast_reject(*, broadcast: Broadcast, actor: User, comment: str, meta: RequestMeta | None = None) -> Broadcast:
    broadcast = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
    refusal = broadcast_refusal("reject", broadcast, actor)
    if refusal:
        raise refusal.error()
    if not comment.strip():
        raise ApplicationError(NEEDS_COMMENT)
    broadcast.rejection_comment = comment.strip()
    broadcast.save(update_fields=["rejection_comment"])
    transition(broadcast, S.REJECTED, actor, meta, action="broadcast.rejected", details={"comment": comment})
    notifications.notify_author(broadcast, comment)
    return broadcast


@transaction.atomic
def broadcast_send_without_approval(*, broadcast: Broadcast, actor: User, meta: RequestMeta | None = None) -> Broadcast:
    """Emergency bypass: an administrator sends an alert now; it is reviewed afterwards."""
    broadcast = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
    refusal = broadcast_refusal("bypass", broadcast, actor)
    if refusal:
        raise refusal.error()
    channels = list(broadcast.channels.all())
    if not channels or not all(c.is_alarm or c.default_priority == Priority.ALERT for c in channels):
        raise ApplicationError(BYPASS_ONLY_ALERTS)
    _validate_for_submit(broadcast)
    broadcast.bypassed_approval = True
    broadcast.bypassed_by = actor
    broadcast.needs_review = True
    broadcast.scheduled_at = None
    broadcast.save(update_fields=["bypassed_approval", "bypassed_by", "needs_review", "scheduled_at"])
    transition(broadcast, S.APPROVED, actor, meta, action="broadcast.sent_without_approval")
    broadcast.approved_content_hash = broadcast_content_hash(broadcast)
    broadcast.save(update_fields=["approved_content_hash"])
    sending.schedule_start(broadcast, actor, meta)
    return broadcast


def broadcast_review(
    *, broadcast: Broadcast, actor: User, comment: str = "", meta: RequestMeta | None = None
) -> Broadcast:
    """The four-eyes check of an emergency bypass, after the fact: by someone with the approver
    role who neither sent it without approval nor wrote or changed it."""
    with transaction.atomic():
        locked = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
        if not locked.needs_review:
            return locked
        refusal = broadcast_refusal("review", locked, actor)
        if refusal is None:
            locked.needs_review = False
            locked.reviewed_by, locked.reviewed_at, locked.review_comment = actor, timezone.now(), comment.strip()
            locked.save(update_fields=["needs_review", "reviewed_by", "reviewed_at", "review_comment"])
            audit_log(action="broadcast.reviewed", actor=actor, target=locked, details={"comment": comment}, meta=meta)
            return locked
        if refusal.conflict is None:
            raise refusal.error()
    raise _four_eyes_refusal(refusal.conflict, refusal.message, broadcast=locked, actor=actor, meta=meta)
