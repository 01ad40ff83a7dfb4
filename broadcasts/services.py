"""Writes on broadcasts: composing, the approval workflow, scheduling, and driving the send.

Workflow: draft → submitted → approved | rejected → scheduled → sending ⇄ paused → sent;
cancelled from anywhere before sent. Channels without approval skip the step; an administrator
may send an alert without approval (emergency bypass), which flags it for review afterwards.
Approved content is frozen: any change sends it back to `submitted`. Every transition is
audit-logged.

The four-eyes rule, checked here (inside the locked transaction), not only in the admin: nobody
who wrote or changed the content or targeting of a broadcast may approve it, and nobody who
wrote, changed or sent it without approval may review that bypass. Every change of content or
targeting (whatever the state, by whatever role) is recorded as a BroadcastEdit row — who, when,
what — and bumps `Broadcast.revision`; a save that changes nothing, or only the send time, is
not a change. Contributions are never cleared by a later submission, because what a co-editor
wrote is still in the version being approved. Rejecting stays open to co-editors: it only stops
a broadcast. An approval names the revision the approver read, so a change made after they
opened the page cannot be approved by that click.

Actors: every write takes `actor`, the person responsible (None: the system). The coming API
must resolve an API key to the person it acts for and pass that person as `actor` (the key's
label can go into the audit log's details), so a key's edits make that person a co-editor and a
key can never approve what its person wrote or changed — a key is never a second pair of eyes.

Sending is driven from the public DueWork index (tenants.models) by the dispatcher process:
a "broadcast-start" row when a broadcast becomes due, then a "broadcast-tick" heartbeat every
few seconds while it sends (recovery, retries, completion). Sender tasks do the work
(broadcasts.pipeline).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone, translation
from django_tenants.utils import get_public_schema_name, schema_context

from accounts.models import User
from accounts.services import audit_log
from broadcasts import pipeline, selectors
from broadcasts.models import Broadcast, BroadcastEdit, BroadcastVariant, Delivery, SenderLease, TrackedLink
from broadcasts.status_sink import delivery_apply_statuses  # noqa: F401 - settings.MESSENGER_STATUS_SINKS names it here
from channels.models import Channel, Priority
from core.errors import ApplicationError
from core.tasks import enqueue_tenant_task
from core.tenancy import connection as db
from messengers.models import Connection

logger = logging.getLogger(__name__)

S = Broadcast.Status
EDITABLE = {S.DRAFT, S.SUBMITTED, S.APPROVED, S.REJECTED, S.SCHEDULED}
TICK_SECONDS = 3

NOT_APPROVER = "Only users with the approver role can approve or reject broadcasts."
NOT_REVIEWER = "Only users with the approver role can review broadcasts sent without approval."
NOT_EDITOR = "Your role cannot change broadcasts; ask an editor."
NOT_CONTROLLER = "Your role cannot pause, resume or cancel broadcasts; ask an editor."
CHANGED_SINCE_OPENED = (
    "This broadcast was changed after you opened it (now revision {revision}); read the new version and approve "
    "it again."
)
WRONG_STATE = "This broadcast is {status}; that step is not possible now."
NEEDS_CHANNEL = "Choose at least one channel."
NEEDS_TEXT = "Write the text in at least one language."
NEEDS_COMMENT = "Say why you reject it; the author sees your comment."
NOT_EDITABLE = "A broadcast that is {status} can no longer be changed."
BYPASS_ONLY_ALERTS = "Sending without approval is only possible for alert broadcasts on alert or alarm channels."
BYPASS_ONLY_ADMINS = "Only administrators can send without approval."
LINK_RE = re.compile(r"https?://[^\s<>\"')\]]+")


# --------------------------------------------------------------------------------------------
# Composing
# --------------------------------------------------------------------------------------------
def _content(broadcast: Broadcast) -> dict[str, Any]:
    """Everything approval covers — what recipients read and who they are — by aspect
    (BroadcastEdit.Aspect). The send time is not in it: moving it needs no new approval."""
    aspect = BroadcastEdit.Aspect
    return {
        aspect.TITLE: broadcast.title,
        aspect.PRIORITY: broadcast.priority,
        aspect.TEXT: sorted((v.language, v.body, v.subject) for v in broadcast.variants.all()),
        aspect.CHANNELS: sorted(broadcast.channels.values_list("pk", flat=True)),
        aspect.DISTRICTS: sorted(broadcast.districts.values_list("pk", flat=True)),
        aspect.LANGUAGES: sorted(broadcast.languages),
        aspect.TAGS: sorted(broadcast.tags),
        aspect.MEDIA: broadcast.media.name if broadcast.media else "",
        aspect.BUTTONS: broadcast.buttons,
        aspect.TEMPLATE: [
            broadcast.wa_template_name,
            broadcast.wa_template_language,
            list(broadcast.wa_template_params),
        ],
    }


def _content_hash(broadcast: Broadcast) -> str:
    content = {str(aspect): value for aspect, value in _content(broadcast).items()}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


@transaction.atomic
def broadcast_create(
    *,
    author: User | None,
    title: str,
    variants: dict[str, str],
    channels: Iterable[Channel],
    priority: str | None = None,
    districts: Iterable[Any] = (),
    languages: Sequence[str] = (),
    tags: Sequence[str] = (),
    buttons: Sequence[dict[str, str]] = (),
    subjects: dict[str, str] | None = None,
    wa_template_name: str = "",
    wa_template_language: str = "",
    wa_template_params: Sequence[str] = (),
    scheduled_at: datetime | None = None,
    request: HttpRequest | None = None,
) -> Broadcast:
    channel_list = list(channels)
    if priority is None:
        priority = (
            Priority.ALERT if any(c.default_priority == Priority.ALERT for c in channel_list) else Priority.NORMAL
        )
    broadcast = Broadcast.objects.create(
        title=title.strip()[:200],
        author=author,
        priority=priority,
        languages=list(languages),
        tags=[t.strip().lower() for t in tags if t.strip()],
        buttons=list(buttons),
        wa_template_name=wa_template_name,
        wa_template_language=wa_template_language,
        wa_template_params=list(wa_template_params),
        scheduled_at=scheduled_at,
    )
    broadcast.channels.set(channel_list)
    broadcast.districts.set(list(districts))
    _set_variants(broadcast, variants, subjects or {})
    audit_log(action="broadcast.created", actor=author, target=broadcast, request=request)
    return broadcast


def _set_variants(broadcast: Broadcast, variants: dict[str, str], subjects: dict[str, str]) -> None:
    keep = {lang for lang, body in variants.items() if body.strip()}
    BroadcastVariant.objects.filter(broadcast=broadcast).exclude(language__in=keep).delete()
    for language in keep:
        BroadcastVariant.objects.update_or_create(
            broadcast=broadcast,
            language=language,
            defaults={"body": variants[language].strip(), "subject": subjects.get(language, "")[:200]},
        )


@transaction.atomic
def broadcast_update(
    *,
    broadcast: Broadcast,
    actor: User | None,
    variants: dict[str, str] | None = None,
    subjects: dict[str, str] | None = None,
    channels: Iterable[Channel] | None = None,
    districts: Iterable[Any] | None = None,
    request: HttpRequest | None = None,
    **fields: Any,
) -> Broadcast:
    """Change content or targeting. Every real change is recorded (BroadcastEdit: who, what,
    revision) and makes the actor a co-editor, who may no longer approve it (four-eyes).
    Changing approved content sends it back for approval."""
    if actor is not None and not actor.has_perm("broadcasts.change_broadcast"):
        raise ApplicationError(NOT_EDITOR)
    broadcast = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
    if broadcast.status not in EDITABLE:
        raise ApplicationError(NOT_EDITABLE.format(status=broadcast.get_status_display()))
    allowed = {
        "title",
        "priority",
        "languages",
        "tags",
        "buttons",
        "media",
        "media_kind",
        "wa_template_name",
        "wa_template_language",
        "wa_template_params",
        "scheduled_at",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"broadcast_update cannot change {sorted(unknown)}")
    before = _content(broadcast)
    send_at_before = broadcast.scheduled_at
    for key, value in fields.items():
        setattr(broadcast, key, value)
    broadcast.save()
    if channels is not None:
        broadcast.channels.set(list(channels))
    if districts is not None:
        broadcast.districts.set(list(districts))
    if variants is not None:
        _set_variants(broadcast, variants, subjects or {})
    after = _content(broadcast)
    aspects = [str(aspect) for aspect in after if after[aspect] != before[aspect]]
    changed = bool(aspects)
    if changed:
        broadcast.revision += 1
        broadcast.save(update_fields=["revision"])
        BroadcastEdit.objects.create(
            broadcast=broadcast, editor=actor, status=broadcast.status, revision=broadcast.revision, changed=aspects
        )
    edit_details = {"changed": aspects, "revision": broadcast.revision}
    if changed and broadcast.status in (S.APPROVED, S.SCHEDULED):
        _unschedule(broadcast)
        _transition(
            broadcast,
            S.SUBMITTED,
            actor,
            request,
            action="broadcast.reopened",
            details={"reason": "content changed after approval", **edit_details},
        )
        broadcast.approved_by, broadcast.approved_at, broadcast.approved_content_hash = None, None, ""
        broadcast.save(update_fields=["approved_by", "approved_at", "approved_content_hash"])
        _notify_approvers(broadcast)
    elif changed and broadcast.status == S.REJECTED:
        _transition(broadcast, S.DRAFT, actor, request, action="broadcast.reopened", details=edit_details)
    elif changed:
        audit_log(action="broadcast.edited", actor=actor, target=broadcast, request=request, details=edit_details)
    if not changed and broadcast.status in (S.APPROVED, S.SCHEDULED) and broadcast.scheduled_at != send_at_before:
        # only the send time moved: the approval stands, the start follows the new time
        audit_log(
            action="broadcast.rescheduled",
            actor=actor,
            target=broadcast,
            request=request,
            details={
                "from": send_at_before.isoformat() if send_at_before else None,
                "to": broadcast.scheduled_at.isoformat() if broadcast.scheduled_at else None,
            },
        )
        _schedule(broadcast, actor, request)
    return broadcast


def _transition(
    broadcast: Broadcast,
    status: str,
    actor: User | None,
    request: HttpRequest | None,
    *,
    action: str,
    details: dict[str, Any] | None = None,
) -> None:
    before = broadcast.status
    broadcast.status = status
    broadcast.save(update_fields=["status", "updated_at"])
    audit_log(
        action=action,
        actor=actor,
        target=broadcast,
        request=request,
        details={"from": before, "to": status, **(details or {})},
    )


def _validate_for_submit(broadcast: Broadcast) -> None:
    if not broadcast.channels.exists():
        raise ApplicationError(NEEDS_CHANNEL)
    if not broadcast.variants.exclude(body="").exists():
        raise ApplicationError(NEEDS_TEXT)


@transaction.atomic
def broadcast_submit(*, broadcast: Broadcast, actor: User | None, request: HttpRequest | None = None) -> Broadcast:
    """Ask for approval — or, if none of its channels requires approval, approve right away."""
    if actor is not None and not actor.has_perm("broadcasts.change_broadcast"):
        raise ApplicationError(NOT_EDITOR)
    broadcast = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
    if broadcast.status not in (S.DRAFT, S.REJECTED):
        raise ApplicationError(WRONG_STATE.format(status=broadcast.get_status_display()))
    _validate_for_submit(broadcast)
    broadcast.submitted_at = timezone.now()
    broadcast.rejection_comment = ""
    if broadcast.author_id is None and actor is not None:
        # A draft nobody wrote (proposed by an alarm state change from a sensor, say): whoever
        # submits it vouches for it, so they count as its author and cannot also approve it.
        broadcast.author = actor
    broadcast.save(update_fields=["submitted_at", "rejection_comment", "author"])
    if not broadcast.channels.filter(requires_approval=True).exists():
        _transition(broadcast, S.SUBMITTED, actor, request, action="broadcast.submitted")
        return _approve(broadcast, actor=None, request=request, note="no approval required for these channels")
    _transition(broadcast, S.SUBMITTED, actor, request, action="broadcast.submitted")
    _notify_approvers(broadcast)
    return broadcast


REFUSAL_ACTIONS = {
    "author": "broadcast.self_approval_refused",
    "editor": "broadcast.co_editor_approval_refused",
    "bypasser": "broadcast.self_review_refused",
}


def _four_eyes_refusal(
    conflict: selectors.FourEyesConflict, *, broadcast: Broadcast, actor: User, request: HttpRequest | None
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
        request=request,
        details={"changed": list(conflict.changed)} if conflict.changed else None,
    )
    with translation.override("en"):
        message = conflict.reason
    # the admin shows `conflict.reason` in the user's language
    return ApplicationError(message, extra={"conflict": conflict})


def broadcast_approve(
    *, broadcast: Broadcast, actor: User, revision: int | None = None, request: HttpRequest | None = None
) -> Broadcast:
    """Approve the broadcast: by someone with the approver role who neither wrote nor changed it
    (four-eyes), for the revision they read (`revision`; None: whatever is current — for callers
    that show no content, such as scripts)."""
    with transaction.atomic():
        locked = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
        if locked.status != S.SUBMITTED:
            raise ApplicationError(WRONG_STATE.format(status=locked.get_status_display()))
        if not selectors.user_can_approve(actor):
            raise ApplicationError(NOT_APPROVER)
        # read under the lock: an edit (which takes the same lock) is either fully before, and
        # counted here, or after, and then it reopens the approval
        conflict = selectors.broadcast_four_eyes_conflict(locked, actor)
        if conflict is None:
            if revision is not None and revision != locked.revision:
                raise ApplicationError(
                    CHANGED_SINCE_OPENED.format(revision=locked.revision), extra={"revision": locked.revision}
                )
            return _approve(locked, actor=actor, request=request)
    raise _four_eyes_refusal(conflict, broadcast=locked, actor=actor, request=request)


def _approve(broadcast: Broadcast, *, actor: User | None, request: HttpRequest | None, note: str = "") -> Broadcast:
    broadcast.approved_by = actor
    broadcast.approved_at = timezone.now()
    broadcast.approved_content_hash = _content_hash(broadcast)
    broadcast.save(update_fields=["approved_by", "approved_at", "approved_content_hash"])
    _transition(
        broadcast, S.APPROVED, actor, request, action="broadcast.approved", details={"note": note} if note else None
    )
    _schedule(broadcast, actor, request)
    return broadcast


@transaction.atomic
def broadcast_reject(
    *, broadcast: Broadcast, actor: User, comment: str, request: HttpRequest | None = None
) -> Broadcast:
    broadcast = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
    if broadcast.status != S.SUBMITTED:
        raise ApplicationError(WRONG_STATE.format(status=broadcast.get_status_display()))
    if not selectors.user_can_approve(actor):
        raise ApplicationError(NOT_APPROVER)
    if not comment.strip():
        raise ApplicationError(NEEDS_COMMENT)
    broadcast.rejection_comment = comment.strip()
    broadcast.save(update_fields=["rejection_comment"])
    _transition(broadcast, S.REJECTED, actor, request, action="broadcast.rejected", details={"comment": comment})
    _notify_author(broadcast, comment)
    return broadcast


@transaction.atomic
def broadcast_send_without_approval(
    *, broadcast: Broadcast, actor: User, request: HttpRequest | None = None
) -> Broadcast:
    """Emergency bypass: an administrator sends an alert now; it is reviewed afterwards."""
    broadcast = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
    if broadcast.status not in (S.DRAFT, S.SUBMITTED, S.REJECTED):
        raise ApplicationError(WRONG_STATE.format(status=broadcast.get_status_display()))
    if not actor.has_perm("broadcasts.send_without_approval"):
        raise ApplicationError(BYPASS_ONLY_ADMINS)
    channels = list(broadcast.channels.all())
    if (
        broadcast.priority != Priority.ALERT
        or not channels
        or not all(c.is_alarm or c.default_priority == Priority.ALERT for c in channels)
    ):
        raise ApplicationError(BYPASS_ONLY_ALERTS)
    _validate_for_submit(broadcast)
    broadcast.bypassed_approval = True
    broadcast.bypassed_by = actor
    broadcast.needs_review = True
    broadcast.scheduled_at = None
    broadcast.save(update_fields=["bypassed_approval", "bypassed_by", "needs_review", "scheduled_at"])
    _transition(broadcast, S.APPROVED, actor, request, action="broadcast.sent_without_approval")
    broadcast.approved_content_hash = _content_hash(broadcast)
    broadcast.save(update_fields=["approved_content_hash"])
    _schedule(broadcast, actor, request)
    return broadcast


def broadcast_review(
    *, broadcast: Broadcast, actor: User, comment: str = "", request: HttpRequest | None = None
) -> Broadcast:
    """The four-eyes check of an emergency bypass, after the fact: by someone with the approver
    role who neither sent it without approval nor wrote or changed it."""
    with transaction.atomic():
        locked = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
        if not locked.needs_review:
            return locked
        if not selectors.user_can_review(actor):
            raise ApplicationError(NOT_REVIEWER)
        conflict = selectors.broadcast_four_eyes_conflict(locked, actor, step="review")
        if conflict is None:
            locked.needs_review = False
            locked.reviewed_by, locked.reviewed_at, locked.review_comment = actor, timezone.now(), comment.strip()
            locked.save(update_fields=["needs_review", "reviewed_by", "reviewed_at", "review_comment"])
            audit_log(
                action="broadcast.reviewed", actor=actor, target=locked, details={"comment": comment}, request=request
            )
            return locked
    raise _four_eyes_refusal(conflict, broadcast=locked, actor=actor, request=request)


# --------------------------------------------------------------------------------------------
# Scheduling, quiet hours
# --------------------------------------------------------------------------------------------
def _tenant() -> Any:
    return db.tenant


def in_quiet_hours(local: datetime, start: dtime | None, end: dtime | None) -> bool:
    if start is None or end is None or start == end:
        return False
    now = local.time()
    if start < end:
        return start <= now < end
    return now >= start or now < end  # overnight, e.g. 22:00–07:00


def quiet_hours_end(local: datetime, start: dtime, end: dtime) -> datetime:
    candidate = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate


def due_time(broadcast: Broadcast, tenant: Any, requested: datetime | None = None) -> datetime:
    """When the broadcast may start: its scheduled time (or now), moved past the tenant's quiet
    hours for normal priority. Alerts are never held."""
    at = requested or broadcast.scheduled_at or timezone.now()
    if broadcast.priority == Priority.ALERT:
        return at
    zone = ZoneInfo(tenant.timezone)
    local = at.astimezone(zone)
    if in_quiet_hours(local, tenant.quiet_hours_start, tenant.quiet_hours_end):
        return quiet_hours_end(local, tenant.quiet_hours_start, tenant.quiet_hours_end).astimezone(zone)
    return at


def _due_work(kind: str, object_id: int, at: datetime) -> None:
    from tenants.models import DueWork

    tenant = _tenant()
    with schema_context(get_public_schema_name()):
        DueWork.objects.update_or_create(
            tenant_id=tenant.pk, kind=kind, object_id=object_id, defaults={"due_at": at, "enqueued_at": None}
        )


def _due_work_clear(kind: str, object_id: int) -> None:
    from tenants.models import DueWork

    tenant = _tenant()
    with schema_context(get_public_schema_name()):
        DueWork.objects.filter(tenant_id=tenant.pk, kind=kind, object_id=object_id).delete()


def _schedule(broadcast: Broadcast, actor: User | None, request: HttpRequest | None) -> None:
    """Approved → scheduled (for later) or due now. The DueWork row is written in the same
    transaction, so a crash between commit and enqueue cannot lose it (R6); the immediate
    enqueue only saves the dispatcher's half second."""
    tenant = _tenant()
    at = due_time(broadcast, tenant)
    now = timezone.now()
    if at > now + timedelta(seconds=1):
        _transition(
            broadcast,
            S.SCHEDULED,
            actor,
            request,
            action="broadcast.scheduled",
            details={"at": at.isoformat(), "held_by_quiet_hours": at != (broadcast.scheduled_at or at)},
        )
    _due_work("broadcast-start", broadcast.pk, at)
    if at <= now + timedelta(seconds=1):
        enqueue_tenant_task("broadcasts.tasks.broadcast_start_task", broadcast_id=broadcast.pk)


def _unschedule(broadcast: Broadcast) -> None:
    _due_work_clear("broadcast-start", broadcast.pk)


# --------------------------------------------------------------------------------------------
# Start, senders, tick
# --------------------------------------------------------------------------------------------
def broadcast_start(*, broadcast_id: int) -> str:
    """Due: claim the broadcast for sending (conditional update — a second run is a no-op),
    materialise its deliveries chunk by chunk and get senders going as soon as rows exist."""
    broadcast = Broadcast.objects.filter(pk=broadcast_id).first()
    if broadcast is None:
        _due_work_clear("broadcast-start", broadcast_id)
        return "gone"
    tenant = _tenant()
    if broadcast.status in (S.APPROVED, S.SCHEDULED):
        now = timezone.now()
        # A start queued for an earlier send time (the time was moved later since) waits for the
        # new one; quiet hours may also have begun since it was scheduled.
        not_before = max(now, broadcast.scheduled_at) if broadcast.scheduled_at else now
        at = due_time(broadcast, tenant, not_before)
        if at > now + timedelta(seconds=1):
            Broadcast.objects.filter(pk=broadcast_id).update(status=S.SCHEDULED)
            _due_work("broadcast-start", broadcast_id, at)
            return "not due yet" if at == not_before else "held by quiet hours"
        claimed = Broadcast.objects.filter(pk=broadcast_id, status__in=[S.APPROVED, S.SCHEDULED]).update(
            status=S.SENDING, send_started_at=timezone.now()
        )
        if claimed:
            audit_log(action="broadcast.sending", actor_label="system", target=broadcast)
            _register_links(broadcast)
    broadcast.refresh_from_db()
    if broadcast.status != S.SENDING:
        _due_work_clear("broadcast-start", broadcast_id)
        return broadcast.status
    _due_work("broadcast-tick", broadcast_id, timezone.now() + timedelta(seconds=TICK_SECONDS))
    _due_work_clear("broadcast-start", broadcast_id)
    if not broadcast.fanout_done:
        pipeline.fanout(broadcast, on_chunk=_top_up_after_chunk(broadcast_id))
    senders_top_up(broadcast_id=broadcast_id)
    if _maybe_finish(broadcast_id):  # nobody to send to, or the senders were faster than this line
        return "sent"
    return "sending"


def _top_up_after_chunk(broadcast_id: int) -> Callable[[int], None]:
    """Senders start as soon as the first fan-out chunk exists (streaming, not after all 100,000)."""

    def top_up(count: int) -> None:
        senders_top_up(broadcast_id=broadcast_id)

    return top_up


def _register_links(broadcast: Broadcast) -> None:
    urls: list[str] = []
    for variant in broadcast.variants.all():
        urls += LINK_RE.findall(variant.body)
    urls += [str(b.get("url", "")) for b in broadcast.buttons or [] if b.get("url")]
    urls += [u for p in broadcast.wa_template_params for u in LINK_RE.findall(p)]
    for position, url in enumerate(dict.fromkeys(u.rstrip(".,;:!?") for u in urls)):
        TrackedLink.objects.get_or_create(broadcast=broadcast, position=position, defaults={"url": url})


def senders_top_up(*, broadcast_id: int) -> int:
    """Keep enough sender tasks queued or running while rows are ready: one per connection
    (pacing makes more useless), more for fast connections a single sender cannot saturate,
    at most BROADCAST_SENDERS."""
    import math

    from django.db.models import Count

    now = timezone.now()
    # a sender beats every few seconds while it works; one silent for this long died with its worker
    SenderLease.objects.filter(
        broadcast_id=broadcast_id, heartbeat_at__lt=now - timedelta(seconds=SENDER_SILENT_SECONDS)
    ).delete()
    ready = dict(
        Delivery.objects.filter(broadcast_id=broadcast_id, status=Delivery.Status.QUEUED, next_attempt_at__lte=now)
        .values_list("connection_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    if not ready:
        return 0
    rates = dict(Connection.objects.filter(pk__in=list(ready)).values_list("pk", "rate_limit_per_second"))
    useful = sum(
        max(1, min(math.ceil(float(rates.get(pk, 1)) / pipeline.SENDER_RATE), math.ceil(count / pipeline.BATCH_MAX)))
        for pk, count in ready.items()
    )
    live = SenderLease.objects.filter(broadcast_id=broadcast_id).count()
    wanted = min(settings.BROADCAST_SENDERS, useful) - live
    for _ in range(max(0, wanted)):
        token = secrets.token_hex(8)
        SenderLease.objects.create(broadcast_id=broadcast_id, token=token, heartbeat_at=now)
        enqueue_tenant_task(
            "broadcasts.tasks.broadcast_send_task",
            broadcast_id=broadcast_id,
            token=token,
            group=f"broadcast-{broadcast_id}",
        )
    return max(0, wanted)


SENDER_TIME_BUDGET = 40.0
SENDER_SILENT_SECONDS = 20  # a sender task re-queues itself after this, so tasks stay short


def broadcast_send(*, broadcast_id: int, token: str) -> dict[str, int]:
    """A sender task: batches of one connection at a time while rows are ready and the time
    budget lasts (broadcasts.pipeline.run_sender); then it hands its slot on or gives it up."""
    lease = SenderLease.objects.filter(token=token).first()
    if lease is None:
        lease = SenderLease.objects.create(broadcast_id=broadcast_id, token=token, heartbeat_at=timezone.now())
    SenderLease.objects.filter(pk=lease.pk).update(started=True, heartbeat_at=timezone.now())
    worker = f"{pipeline.worker_id()}:{token}"

    def after_batch(connection: Connection, report: pipeline.BatchReport) -> bool:
        """Runs on the sender's database thread after each batch; False stops the sender."""
        from messengers.services import connection_set_status, webhook_events_retry_deferred

        SenderLease.objects.filter(pk=lease.pk).update(heartbeat_at=timezone.now())
        webhook_events_retry_deferred(connection_id=connection.pk)
        if report.connection_error:
            connection_set_status(
                connection=connection,
                status=Connection.Status.PAUSED,
                detail=f"paused automatically: {report.connection_error}",
            )
        if (
            report.attempted >= pipeline.PAUSE_MIN_ATTEMPTS
            and report.errors / report.attempted > pipeline.PAUSE_ERROR_RATE
        ):
            broadcast = Broadcast.objects.get(pk=broadcast_id)
            broadcast_pause(
                broadcast=broadcast,
                actor=None,
                reason=f"paused automatically: {report.errors} of {report.attempted} sends failed",
            )
            return False
        return True

    try:
        result = pipeline.run_sender(
            broadcast_id=broadcast_id,
            tenant=_tenant(),
            worker=worker,
            time_budget=SENDER_TIME_BUDGET,
            after_batch=after_batch,
            heartbeat=lambda: SenderLease.objects.filter(pk=lease.pk).update(heartbeat_at=timezone.now()),
        )
    finally:
        SenderLease.objects.filter(pk=lease.pk).delete()
    if result.out_of_time:
        senders_top_up(broadcast_id=broadcast_id)
    else:
        _maybe_finish(broadcast_id)
    return {
        "sent": result.sent,
        "failed": result.failed,
        "retry": result.retry,
        "skipped": result.skipped,
        "batches": result.batches,
    }


def broadcast_tick(*, broadcast_id: int) -> str:
    """Heartbeat while sending: re-queue rows of dead workers, keep senders going for retries,
    and finish the broadcast when every row has an outcome."""
    broadcast = Broadcast.objects.filter(pk=broadcast_id).first()
    if broadcast is None or broadcast.status not in (S.SENDING, S.PAUSED):
        _due_work_clear("broadcast-tick", broadcast_id)
        return "done"
    pipeline.sweep_expired_leases(broadcast_id)
    if broadcast.status == S.SENDING:
        if not broadcast.fanout_done:
            # the start task died mid fan-out: carry on from the cursor
            pipeline.fanout(broadcast, on_chunk=_top_up_after_chunk(broadcast_id))
        senders_top_up(broadcast_id=broadcast_id)
        _maybe_finish(broadcast_id)
    status = Broadcast.objects.filter(pk=broadcast_id).values_list("status", flat=True).first()
    if status in (S.SENDING, S.PAUSED):
        _due_work("broadcast-tick", broadcast_id, timezone.now() + timedelta(seconds=TICK_SECONDS))
    return str(status)


def _maybe_finish(broadcast_id: int) -> bool:
    open_rows = Delivery.objects.filter(
        broadcast_id=broadcast_id,
        status__in=[Delivery.Status.QUEUED, Delivery.Status.CLAIMED, Delivery.Status.SENDING],
    ).exists()
    if open_rows:
        return False
    finished = Broadcast.objects.filter(pk=broadcast_id, status=S.SENDING, fanout_done=True).update(
        status=S.SENT, send_finished_at=timezone.now()
    )
    if finished:
        _due_work_clear("broadcast-tick", broadcast_id)
        broadcast = Broadcast.objects.get(pk=broadcast_id)
        from broadcasts.selectors import broadcast_progress

        audit_log(
            action="broadcast.sent",
            actor_label="system",
            target=broadcast,
            details=broadcast_progress(broadcast).as_dict(),
        )
    return bool(finished)


# --------------------------------------------------------------------------------------------
# Pause, resume, cancel
# --------------------------------------------------------------------------------------------
def _check_control(actor: User | None) -> None:
    """People need the role; the system (None: automatic pause on errors) may always."""
    if actor is not None and not actor.has_perm("broadcasts.control_sending"):
        raise ApplicationError(NOT_CONTROLLER)


@transaction.atomic
def broadcast_pause(
    *, broadcast: Broadcast, actor: User | None, reason: str = "", request: HttpRequest | None = None
) -> Broadcast:
    _check_control(actor)
    changed = Broadcast.objects.filter(pk=broadcast.pk, status=S.SENDING).update(
        status=S.PAUSED, paused_reason=reason[:300] or "paused"
    )
    broadcast.refresh_from_db()
    if changed:
        audit_log(
            action="broadcast.paused",
            actor=actor,
            actor_label="" if actor else "system",
            target=broadcast,
            details={"reason": reason},
            request=request,
        )
    return broadcast


@transaction.atomic
def broadcast_resume(*, broadcast: Broadcast, actor: User | None, request: HttpRequest | None = None) -> Broadcast:
    _check_control(actor)
    changed = Broadcast.objects.filter(pk=broadcast.pk, status=S.PAUSED).update(status=S.SENDING, paused_reason="")
    broadcast.refresh_from_db()
    if changed:
        audit_log(action="broadcast.resumed", actor=actor, target=broadcast, request=request)
        Delivery.objects.filter(broadcast=broadcast, status=Delivery.Status.QUEUED).update(
            next_attempt_at=timezone.now()
        )
        _due_work("broadcast-tick", broadcast.pk, timezone.now())
        enqueue_tenant_task("broadcasts.tasks.broadcast_tick_task", broadcast_id=broadcast.pk)
    return broadcast


@transaction.atomic
def broadcast_cancel(*, broadcast: Broadcast, actor: User | None, request: HttpRequest | None = None) -> Broadcast:
    _check_control(actor)
    broadcast = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
    if broadcast.status in (S.SENT, S.CANCELLED):
        raise ApplicationError(WRONG_STATE.format(status=broadcast.get_status_display()))
    before = broadcast.status
    _transition(broadcast, S.CANCELLED, actor, request, action="broadcast.cancelled", details={"was": before})
    skipped = Delivery.objects.filter(
        broadcast=broadcast, status__in=[Delivery.Status.QUEUED, Delivery.Status.CLAIMED]
    ).update(
        status=Delivery.Status.SKIPPED,
        error_kind="cancelled",
        error_detail="broadcast cancelled",
        lease_expires_at=None,
        claimed_by="",
    )
    _due_work_clear("broadcast-start", broadcast.pk)
    _due_work_clear("broadcast-tick", broadcast.pk)
    logger.info("broadcast %s cancelled, %s deliveries skipped", broadcast.pk, skipped)
    return broadcast


# --------------------------------------------------------------------------------------------
# GDPR erasure (settings.SUBSCRIBER_ERASURE_HOOKS)
# --------------------------------------------------------------------------------------------
def deliveries_erase_recipient(
    *, subscriber_id: int | None, contact_ids: list[int], since: datetime | None
) -> list[str]:
    """A person's deliveries keep their status (the broadcast's counts) but lose what identifies
    them: the provider's message id (WhatsApp's wamid is base64 of the number, Telegram's starts
    with the chat id), the provider's error text (Twilio's quotes the number) and the contact.
    The link to the erased Subscriber row stays: that row holds nothing personal any more.

    With `since` (the periodic clean-up after an erasure) only broadcasts still sending at that
    moment are looked at, where a send in flight recorded its id afterwards; that reads the
    (broadcast, subscriber) index instead of every delivery. Returns the ids it blanked."""
    whose = Q(contact_id__in=contact_ids)
    if subscriber_id is not None:
        whose |= Q(subscriber_id=subscriber_id)
    rows = Delivery.objects.filter(whose)
    if since is not None:
        sending = Broadcast.objects.filter(Q(send_finished_at__isnull=True) | Q(send_finished_at__gte=since))
        rows = rows.filter(broadcast__in=sending.values("pk"))
    rows = rows.filter(~Q(provider_message_id="") | ~Q(error_detail="") | Q(contact_id__isnull=False))
    provider_ids = list(rows.exclude(provider_message_id="").values_list("provider_message_id", flat=True))
    rows.update(provider_message_id="", error_detail="", contact=None)
    return provider_ids


# --------------------------------------------------------------------------------------------
# Alarm channels: a state change proposes the standard draft
# --------------------------------------------------------------------------------------------
def broadcast_propose_for_alarm(*, channel: Channel, change: Any, actor: User | None) -> Broadcast | None:
    texts = {
        Channel.AlarmState.ANNOUNCED: channel.alarm_text_update or channel.alarm_text_start,
        Channel.AlarmState.ACTIVE: channel.alarm_text_start,
        Channel.AlarmState.ALL_CLEAR: channel.alarm_text_end,
    }
    text = texts.get(change.to_state, "")
    if not text:
        return None
    labels = {
        Channel.AlarmState.ANNOUNCED: "Vorankündigung",
        Channel.AlarmState.ACTIVE: "Alarm",
        Channel.AlarmState.ALL_CLEAR: "Entwarnung",
    }
    broadcast = broadcast_create(
        author=actor,
        title=f"{channel.name}: {labels.get(change.to_state, change.to_state)}",
        variants={"de": text},
        channels=[channel],
        priority=Priority.ALERT,
    )
    Broadcast.objects.filter(pk=broadcast.pk).update(alarm_channel=channel)
    return broadcast


# --------------------------------------------------------------------------------------------
# Notifications
# --------------------------------------------------------------------------------------------
def _admin_url(broadcast: Broadcast) -> str:
    from tenants.selectors import tenant_absolute_url

    return tenant_absolute_url(f"/admin/broadcasts/broadcast/{broadcast.pk}/change/")


def _notify_approvers(broadcast: Broadcast) -> None:
    """Ask the approvers who may approve it: not its author nor anyone who changed it."""
    approvers = [
        u.email
        for u in User.objects.filter(is_active=True)
        .filter(
            Q(groups__permissions__codename="approve_broadcast") | Q(user_permissions__codename="approve_broadcast")
        )
        .exclude(pk__in=list(selectors.broadcast_contributors(broadcast)))
        .distinct()
        if u.email
    ]
    if not approvers:
        return
    subject = f"Freigabe erbeten / Approval requested: {broadcast.title}"
    body = (
        f"„{broadcast.title}“ wartet auf Ihre Freigabe.\n{_admin_url(broadcast)}\n\n"
        f'"{broadcast.title}" is waiting for your approval.\n'
    )
    transaction.on_commit(lambda: send_mail(subject, body, None, approvers, fail_silently=True))


def _notify_author(broadcast: Broadcast, comment: str) -> None:
    author = broadcast.author
    if not author or not author.email:
        return
    subject = f"Abgelehnt / Rejected: {broadcast.title}"
    body = f"{comment}\n\n{_admin_url(broadcast)}\n"
    transaction.on_commit(lambda: send_mail(subject, body, None, [author.email], fail_silently=True))
