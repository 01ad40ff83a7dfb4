"""The dispatcher: the process that turns due time into queued work, twice a second.

django-q2 schedules have minute resolution; a due broadcast must start within 1 s (quality
goal P5). The dispatcher polls the public DueWork index (one indexed query for all tenants),
queues each due row's tenant task and marks it enqueued; the row itself is removed or moved by
the task, so a lost queue message is simply queued again after ENQUEUE_RETRY seconds. It also
sweeps each tenant's pending webhook events, in case an apply task was lost.

Several dispatchers may run (one per machine); a PostgreSQL advisory lock lets one work while
the others stand by.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from types import FrameType

from django.db import close_old_connections, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import schema_context

from broadcasts import tasks
from broadcasts.services.sending import START_LEAD, sender_running, work_key
from core.tasks import enqueue_tenant_task, task_waits_purge
from messengers.models import WebhookEvent
from messengers.services import webhook_schedule_apply
from tenants.models import DueWork, Tenant

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
ENQUEUE_RETRY = timedelta(seconds=30)
WEBHOOK_SWEEP_SECONDS = 2.0
ADVISORY_LOCK = 0x6D6E6C01  # "mnl" + 1

TASKS: dict[str, Callable[..., object]] = {
    "broadcast-start": tasks.broadcast_start_task,
    "broadcast-tick": tasks.broadcast_tick_task,
}


def dispatch_due(limit: int = 200) -> int:
    """Queue every due row once (again after ENQUEUE_RETRY if it is still there); a broadcast's
    start START_LEAD early (it waits for its minute in the worker, see broadcast_start)."""
    now = timezone.now()
    count = 0
    with transaction.atomic():
        rows = list(
            DueWork.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("tenant")
            .filter(Q(due_at__lte=now) | Q(kind="broadcast-start", due_at__lte=now + START_LEAD))
            .exclude(enqueued_at__gt=now - ENQUEUE_RETRY)
            .order_by("due_at")[:limit]
        )
        for row in rows:
            task = TASKS.get(row.kind)
            if task is None or not row.tenant.is_active:
                continue
            with schema_context(row.tenant.schema_name):
                enqueue_tenant_task(
                    task,
                    broadcast_id=row.object_id,
                    task_name=f"{row.tenant.schema_name}:{row.kind}",
                    keep_result=row.kind != "broadcast-tick",  # every few seconds while sending
                    wait_key=work_key(row.object_id),
                    urgent=row.kind == "broadcast-start",  # a sender of another broadcast makes room
                    # a tick while the broadcast's own sender works takes nobody's worker: the
                    # give-way would cost the other broadcast a second and gain nothing (P2)
                    waits=row.kind == "broadcast-start" or not sender_running(row.object_id),
                )
            row.enqueued_at = now
            count += 1
        DueWork.objects.bulk_update(rows, ["enqueued_at"])
    return count


def sweep_webhook_events() -> int:
    """Queue an apply task for every tenant with events waiting longer than a couple of seconds."""
    stale = timezone.now() - timedelta(seconds=2)
    count = 0
    for tenant in Tenant.objects.exclude(schema_name="public").filter(status=Tenant.Status.ACTIVE):
        with schema_context(tenant.schema_name):
            waiting = WebhookEvent.objects.filter(state=WebhookEvent.State.PENDING, received_at__lt=stale).exists()
            retry = WebhookEvent.objects.filter(
                state__in=[WebhookEvent.State.DEFERRED, WebhookEvent.State.FAILED],
                applied_at__lte=timezone.now(),
                received_at__gt=timezone.now() - timedelta(days=7),
            ).exists()
            if waiting or retry:
                with transaction.atomic():
                    webhook_schedule_apply()
                count += 1
    return count


class Dispatcher:
    def __init__(self) -> None:
        self.running = True

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.running = False

    def _lock(self) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK])
            return bool(cursor.fetchone()[0])

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        leader = False
        locked_on: object = None  # the DB-API connection holding the lock (a session lock)
        last_sweep = 0.0
        while self.running:
            try:
                close_old_connections()
                if leader and connection.connection is not locked_on:
                    # Django closed the connection (DB_CONN_MAX_AGE passed, or it was unusable)
                    # and the lock went with it: take it again, or stand by if another took it
                    leader = False
                if not leader:
                    leader = self._lock()
                    if not leader:
                        time.sleep(2.0)
                        continue
                    locked_on = connection.connection
                    logger.info("dispatcher active")
                dispatch_due()
                if time.monotonic() - last_sweep > WEBHOOK_SWEEP_SECONDS:
                    sweep_webhook_events()
                    task_waits_purge()
                    last_sweep = time.monotonic()
            except Exception:  # a database restart must not kill the dispatcher (R3)
                logger.exception("dispatcher cycle failed; retrying")
                leader = False
                try:
                    connection.close()
                except Exception:
                    logger.debug("closing the broken connection failed", exc_info=True)
                time.sleep(1.0)
                continue
            time.sleep(POLL_SECONDS)
