"""Driving the send of an approved broadcast: putting it on the schedule, the start (claim,
tracked links, fan-out), keeping sender tasks going, the heartbeat tick, finishing, and pause,
resume and cancel.

Sending is driven from the public DueWork index (broadcasts.schedule) by the dispatcher
process: a "broadcast-start" row when a broadcast becomes due, then a "broadcast-tick" heartbeat
every few seconds while it sends (recovery, retries, completion). Sender tasks do the work
(broadcasts.pipeline). The approval workflow and composing call `schedule_start` and
`unschedule`; everything else here runs in tasks or on a user's pause/resume/cancel."""

from __future__ import annotations

import logging
import math
import re
import secrets
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_log
from broadcasts import pipeline, schedule, selectors, tasks
from broadcasts.changes import broadcast_finished
from broadcasts.models import Broadcast, Delivery, SenderLease, TrackedLink
from broadcasts.services.actions import broadcast_refusal, control_refusal
from broadcasts.services.states import S, status_changed_emit, transition
from core.http import RequestMeta
from core.tasks import enqueue_tenant_task, give_way, tasks_run_inline
from core.tenancy import connection as db
from messengers.models import Connection
from messengers.services import connection_set_status, webhook_events_retry_deferred

logger = logging.getLogger(__name__)

TICK_SECONDS = 3
# a start is queued this much before its time (broadcasts.dispatcher) and waits for the minute in
# its worker: under load, getting a worker takes up to a second (core.tasks.give_way)
START_LEAD = timedelta(seconds=2)
GIVE_WAY_REQUEUE = timedelta(seconds=1)  # a sender that gave its worker up is queued again after this
SENDER_TIME_BUDGET = 40.0
SENDER_SILENT_SECONDS = 20  # a sender task re-queues itself after this, so tasks stay short
LINK_RE = re.compile(r"https?://[^\s<>\"')\]]+")


# --------------------------------------------------------------------------------------------
# On the schedule
# --------------------------------------------------------------------------------------------
def schedule_start(broadcast: Broadcast, actor: User | None, meta: RequestMeta | None) -> None:
    """Approved → scheduled (for later) or due now. The DueWork row is written in the same
    transaction, so a crash between commit and enqueue cannot lose it (R6); the immediate
    enqueue only saves the dispatcher's half second."""
    tenant = schedule.current_tenant()
    at = schedule.due_time(broadcast, tenant)
    now = timezone.now()
    if at > now + timedelta(seconds=1):
        transition(
            broadcast,
            S.SCHEDULED,
            actor,
            meta,
            action="broadcast.scheduled",
            details={"at": at.isoformat(), "held_by_quiet_hours": at != (broadcast.scheduled_at or at)},
        )
    schedule.due_work_set("broadcast-start", broadcast.pk, at)
    if at <= now + timedelta(seconds=1):
        enqueue_tenant_task(
            tasks.broadcast_start_task, broadcast_id=broadcast.pk, wait_key=work_key(broadcast.pk), urgent=True
        )


def work_key(broadcast_id: int) -> str:
    """Whose work a queued task of this broadcast is, while it waits (core.tasks.give_way): its
    senders do not give way to each other, nor to its own start."""
    return f"{db.schema_name}:broadcast-{broadcast_id}"


def sender_running(broadcast_id: int) -> bool:
    """A sender of the broadcast works now (started, and beat within SENDER_SILENT_SECONDS)."""
    return SenderLease.objects.filter(
        broadcast_id=broadcast_id,
        started=True,
        heartbeat_at__gte=timezone.now() - timedelta(seconds=SENDER_SILENT_SECONDS),
    ).exists()


def unschedule(broadcast: Broadcast) -> None:
    schedule.due_work_clear("broadcast-start", broadcast.pk)


# --------------------------------------------------------------------------------------------
# Start, senders, tick
# --------------------------------------------------------------------------------------------
def broadcast_start(*, broadcast_id: int) -> str:
    """Due: claim the broadcast for sending (conditional update — a second run is a no-op),
    materialise its deliveries chunk by chunk and get senders going as soon as rows exist."""
    broadcast = Broadcast.objects.filter(pk=broadcast_id).first()
    if broadcast is None:
        schedule.due_work_clear("broadcast-start", broadcast_id)
        return "gone"
    tenant = schedule.current_tenant()
    if broadcast.status in (S.APPROVED, S.SCHEDULED):
        now = timezone.now()
        # A start queued for an earlier send time (the time was moved later since) waits for the
        # new one; quiet hours may also have begun since it was scheduled.
        not_before = max(now, broadcast.scheduled_at) if broadcast.scheduled_at else now
        at = schedule.due_time(broadcast, tenant, not_before)
        if at > now + START_LEAD + timedelta(seconds=1):
            with transaction.atomic():
                if Broadcast.objects.filter(pk=broadcast_id, status=S.APPROVED).update(status=S.SCHEDULED):
                    status_changed_emit(broadcast, S.APPROVED, S.SCHEDULED)
            schedule.due_work_set("broadcast-start", broadcast_id, at)
            return "not due yet" if at == not_before else "held by quiet hours"
        if at > now:
            # queued up to START_LEAD early (the dispatcher), so that a worker is free at `at`
            # even while other broadcasts keep every worker busy: wait for the minute
            time.sleep((at - now).total_seconds())
            moved = Broadcast.objects.filter(pk=broadcast_id).values_list("scheduled_at", flat=True).first()
            if moved is not None and moved > at:
                return "moved"  # rescheduled while it waited: the new time's start is due work again
        with transaction.atomic():
            claimed = Broadcast.objects.filter(pk=broadcast_id, status__in=[S.APPROVED, S.SCHEDULED]).update(
                status=S.SENDING, send_started_at=timezone.now()
            )
            if claimed:
                audit_log(action="broadcast.sending", actor_label="system", target=broadcast)
                status_changed_emit(broadcast, broadcast.status, S.SENDING)
        if claimed:
            _register_links(broadcast)
    broadcast.refresh_from_db()
    if broadcast.status != S.SENDING:
        schedule.due_work_clear("broadcast-start", broadcast_id)
        return broadcast.status
    schedule.due_work_set("broadcast-tick", broadcast_id, timezone.now() + timedelta(seconds=TICK_SECONDS))
    schedule.due_work_clear("broadcast-start", broadcast_id)
    if not broadcast.fanout_done:
        pipeline.fanout(broadcast, on_chunk=_top_up_after_chunk(broadcast_id))
    senders_top_up(broadcast_id=broadcast_id, starting=True)
    if _maybe_finish(broadcast_id):  # nobody to send to, or the senders were faster than this line
        return "sent"
    if not SenderLease.objects.filter(broadcast_id=broadcast_id, started=True).exists():
        # no sender has a worker yet: this task has one, so it runs the first sender itself
        # rather than wait for another worker (the queued task of that sender then finds its
        # lease taken and ends)
        token = (
            SenderLease.objects.filter(broadcast_id=broadcast_id, started=False)
            .order_by("created_at")
            .values_list("token", flat=True)
            .first()
        )
        if token:
            broadcast_send(broadcast_id=broadcast_id, token=token)
            return str(Broadcast.objects.filter(pk=broadcast_id).values_list("status", flat=True).first())
    return "sending"


def _top_up_after_chunk(broadcast_id: int) -> Callable[[int], None]:
    """Senders start as soon as the first fan-out chunk exists (streaming, not after all 100,000)."""

    def top_up(count: int) -> None:
        senders_top_up(broadcast_id=broadcast_id, starting=True)

    return top_up


def _register_links(broadcast: Broadcast) -> None:
    urls: list[str] = []
    for variant in broadcast.variants.all():
        urls += LINK_RE.findall(variant.body)
    urls += [str(b.get("url", "")) for b in broadcast.buttons or [] if b.get("url")]
    urls += [u for p in broadcast.wa_template_params for u in LINK_RE.findall(p)]
    for position, url in enumerate(dict.fromkeys(u.rstrip(".,;:!?") for u in urls)):
        TrackedLink.objects.get_or_create(broadcast=broadcast, position=position, defaults={"url": url})


def senders_top_up(*, broadcast_id: int, starting: bool = False) -> int:
    """Keep enough sender tasks queued or running while rows are ready: one per connection
    (pacing makes more useless), more for fast connections a single sender cannot saturate,
    at most BROADCAST_SENDERS. `starting`: from the broadcast's start, which runs the first
    sender itself (its queued copy asks for no worker: core.tasks.give_way)."""
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
    for index in range(max(0, wanted)):
        token = secrets.token_hex(8)
        SenderLease.objects.create(broadcast_id=broadcast_id, token=token, heartbeat_at=now)
        enqueue_tenant_task(
            tasks.broadcast_send_task,
            broadcast_id=broadcast_id,
            token=token,
            group=f"broadcast-{broadcast_id}",
            wait_key=work_key(broadcast_id),
            # the start runs its broadcast's first sender itself; the queued copy is a fallback
            # that must not take another broadcast's worker (it would find its lease taken)
            waits=not (starting and live == 0 and index == 0),
        )
    return max(0, wanted)


def broadcast_send(*, broadcast_id: int, token: str) -> dict[str, int]:
    """A sender task: batches of one connection at a time while rows are ready and the time
    budget lasts (broadcasts.pipeline.run_sender); then it hands its slot on or gives it up."""
    # take the lease (a conditional update): the start task may have run this sender itself
    # already (broadcast_start), or the queue delivered the task twice
    if not SenderLease.objects.filter(token=token, started=False).update(started=True, heartbeat_at=timezone.now()):
        if SenderLease.objects.filter(token=token).exists():
            return {"sent": 0, "failed": 0, "retry": 0, "skipped": 0, "batches": 0}
        SenderLease.objects.create(broadcast_id=broadcast_id, token=token, heartbeat_at=timezone.now(), started=True)
    lease = SenderLease.objects.get(token=token)
    worker = f"{pipeline.worker_id()}:{token}"
    own_key = work_key(broadcast_id)

    def after_batch(connection: Connection, report: pipeline.BatchReport) -> bool:
        """Runs on the sender's database thread after each batch; False stops the sender."""
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
            tenant=schedule.current_tenant(),
            worker=worker,
            time_budget=SENDER_TIME_BUDGET,
            after_batch=after_batch,
            heartbeat=lambda: SenderLease.objects.filter(pk=lease.pk).update(heartbeat_at=timezone.now()),
            give_way=None if tasks_run_inline() else lambda: give_way(own_key),
        )
    finally:
        SenderLease.objects.filter(pk=lease.pk).delete()
    if result.stopped_reason == pipeline.GAVE_WAY:
        # queued again by the next tick, not now: the worker goes to the work it gave way to,
        # and then to what that queues (a new broadcast's first sender), not back to this one
        schedule.due_work_set("broadcast-tick", broadcast_id, timezone.now() + GIVE_WAY_REQUEUE)
    elif result.out_of_time:
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
        schedule.due_work_clear("broadcast-tick", broadcast_id)
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
        schedule.due_work_set("broadcast-tick", broadcast_id, timezone.now() + timedelta(seconds=TICK_SECONDS))
    return str(status)


def _maybe_finish(broadcast_id: int) -> bool:
    open_rows = Delivery.objects.filter(
        broadcast_id=broadcast_id,
        status__in=[Delivery.Status.QUEUED, Delivery.Status.CLAIMED, Delivery.Status.SENDING],
    ).exists()
    if open_rows:
        return False
    with transaction.atomic():
        finished = Broadcast.objects.filter(pk=broadcast_id, status=S.SENDING, fanout_done=True).update(
            status=S.SENT, send_finished_at=timezone.now()
        )
        if finished:
            broadcast = Broadcast.objects.get(pk=broadcast_id)
            audit_log(
                action="broadcast.sent",
                actor_label="system",
                target=broadcast,
                details=selectors.broadcast_progress(broadcast).as_dict(),
            )
            status_changed_emit(broadcast, S.SENDING, S.SENT)
    if finished:
        schedule.due_work_clear("broadcast-tick", broadcast_id)
        broadcast_finished(broadcast_id=broadcast_id)
    return bool(finished)


# --------------------------------------------------------------------------------------------
# Pause, resume, cancel
# --------------------------------------------------------------------------------------------
def _check_control(actor: User | None) -> None:
    """Pause and resume of a broadcast in another state do nothing; only the role is refused."""
    refusal = control_refusal(actor)
    if refusal:
        raise refusal.error()


@transaction.atomic
def broadcast_pause(
    *, broadcast: Broadcast, actor: User | None, reason: str = "", meta: RequestMeta | None = None
) -> Broadcast:
    _check_control(actor)
    changed = Broadcast.objects.filter(pk=broadcast.pk, status=S.SENDING).update(
        status=S.PAUSED, paused_reason=reason[:300] or "paused"
    )
    broadcast.refresh_from_db()
    if changed:
        status_changed_emit(broadcast, S.SENDING, S.PAUSED)
        audit_log(
            action="broadcast.paused",
            actor=actor,
            actor_label="" if actor else "system",
            target=broadcast,
            details={"reason": reason},
            meta=meta,
        )
    return broadcast


@transaction.atomic
def broadcast_resume(*, broadcast: Broadcast, actor: User | None, meta: RequestMeta | None = None) -> Broadcast:
    _check_control(actor)
    changed = Broadcast.objects.filter(pk=broadcast.pk, status=S.PAUSED).update(status=S.SENDING, paused_reason="")
    broadcast.refresh_from_db()
    if changed:
        status_changed_emit(broadcast, S.PAUSED, S.SENDING)
        audit_log(action="broadcast.resumed", actor=actor, target=broadcast, meta=meta)
        Delivery.objects.filter(broadcast=broadcast, status=Delivery.Status.QUEUED).update(
            next_attempt_at=timezone.now()
        )
        schedule.due_work_set("broadcast-tick", broadcast.pk, timezone.now())
        enqueue_tenant_task(tasks.broadcast_tick_task, broadcast_id=broadcast.pk)
    return broadcast


@transaction.atomic
def broadcast_cancel(*, broadcast: Broadcast, actor: User | None, meta: RequestMeta | None = None) -> Broadcast:
    broadcast = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
    refusal = broadcast_refusal("cancel", broadcast, actor)
    if refusal:
        raise refusal.error()
    before = broadcast.status
    transition(broadcast, S.CANCELLED, actor, meta, action="broadcast.cancelled", details={"was": before})
    skipped = Delivery.objects.filter(
        broadcast=broadcast, status__in=[Delivery.Status.QUEUED, Delivery.Status.CLAIMED]
    ).update(
        status=Delivery.Status.SKIPPED,
        error_kind="cancelled",
        error_detail="broadcast cancelled",
        lease_expires_at=None,
        claimed_by="",
    )
    schedule.due_work_clear("broadcast-start", broadcast.pk)
    schedule.due_work_clear("broadcast-tick", broadcast.pk)
    logger.info("broadcast %s cancelled, %s deliveries skipped", broadcast.pk, skipped)
    if broadcast.send_started_at is not None:
        broadcast_finished(broadcast_id=broadcast.pk)
    return broadcast
