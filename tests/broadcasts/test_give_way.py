"""One large broadcast must not hold every worker while other work waits (core.tasks.give_way,
bench P5_BUSY): a sender hands its worker over, between windows, to a task that has waited
long enough, and nothing it had claimed is lost."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import schema_context

from broadcasts import pipeline, services
from broadcasts.dispatcher import dispatch_due
from broadcasts.models import Broadcast, Delivery, SenderLease
from broadcasts.services import sending as sending_module
from core import tasks as core_tasks
from core.tasks import TASK_WAIT_PATIENCE, TASK_WAIT_STALE, enqueue_tenant_task, give_way, task_waits_purge
from messengers.models import Connection, SandboxMessage
from messengers.selectors import connection_sandbox
from tenants.models import DueWork, TaskWait, Tenant
from tests.broadcasts.test_reliability import _approved
from tests.conftest import in_tenant


def _wait(key: str, *, ago: float, urgent: bool = False, yielded_ago: float | None = None) -> TaskWait:
    now = timezone.now()
    with schema_context("public"):
        return TaskWait.objects.create(
            id=uuid.uuid4(),
            key=key,
            urgent=urgent,
            queued_at=now - timedelta(seconds=ago),
            yielded_at=None if yielded_ago is None else now - timedelta(seconds=yielded_ago),
        )


def _clear() -> None:
    with schema_context("public"):
        TaskWait.objects.all().delete()


def test_give_way_picks_work_that_waited_long_enough_and_is_not_the_callers(tenant: Any) -> None:
    _clear()
    assert give_way("t:broadcast-1") is None  # nobody waits
    _wait("t:broadcast-1", ago=30, urgent=True)  # the caller's own work: never
    _wait("t:apply", ago=1)  # not urgent, has not waited TASK_WAIT_PATIENCE yet
    _wait("t:start-fresh", ago=0.0, urgent=True)  # urgent, but queued this instant
    _wait("t:lost", ago=TASK_WAIT_STALE.total_seconds() + 5, urgent=True)  # its task was lost
    assert give_way("t:broadcast-1") is None
    patient = _wait("t:tick", ago=TASK_WAIT_PATIENCE.total_seconds() + 1)
    urgent = _wait("u:broadcast-7", ago=0.5, urgent=True)
    # urgent work first, then by age; each waiting task gets one sender, not all of them
    assert give_way("t:broadcast-1") == "u:broadcast-7"
    assert give_way("t:broadcast-1") == "t:tick"
    assert give_way("t:broadcast-1") is None
    with schema_context("public"):
        assert TaskWait.objects.get(pk=urgent.pk).yielded_at is not None
        assert TaskWait.objects.get(pk=patient.pk).yielded_at is not None
    # still waiting a while after a sender gave way (another task took that worker): again
    _wait("v:broadcast-9", ago=10, urgent=True, yielded_ago=3)
    assert give_way("t:broadcast-1") == "v:broadcast-9"
    assert task_waits_purge() == 1  # the lost one
    _clear()


def test_a_queued_task_waits_until_it_starts(
    tenant: Any, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """Recorded when queued (after the commit), gone once a worker starts it."""
    _clear()
    queued: list[tuple[Any, ...]] = []
    # the broker, as if every worker were busy: the task stays queued
    monkeypatch.setattr(core_tasks, "async_task", lambda *args, **kwargs: queued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_tenant_task("tests.core.tasks_probe.record_schema", wait_key="x:broadcast-3", urgent=True, marker="w")
        with schema_context("public"):
            assert not TaskWait.objects.exists()  # nothing before the commit
    (args,) = queued
    wait_id = args[4]
    with schema_context("public"):
        row = TaskWait.objects.get(pk=wait_id)
    assert (row.key, row.urgent) == ("x:broadcast-3", True)
    assert core_tasks.run_in_schema(*args[1:]) == tenant.schema_name  # a worker starts it
    with schema_context("public"):
        assert not TaskWait.objects.filter(pk=wait_id).exists()


def test_a_sender_gives_its_worker_up_between_windows_and_loses_nothing(
    committed_tenant: Callable[..., Tenant],
) -> None:
    tenant = committed_tenant()
    with in_tenant(tenant):
        broadcast, _ = _approved(tenant, count=60)
        sandbox = connection_sandbox()
        assert sandbox is not None
        Connection.objects.filter(pk=sandbox.pk).update(rate_limit_per_second=20)  # three seconds of sending
        Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.SENDING)
        pipeline.fanout(Broadcast.objects.get(pk=broadcast.pk))
        _clear()
        waiting = _wait("other:broadcast-1", ago=1, urgent=True)  # another tenant's broadcast is due

        with override_settings(Q_CLUSTER={**settings.Q_CLUSTER, "sync": False}):  # as on a worker
            first = services.broadcast_send(broadcast_id=broadcast.pk, token="t1")

        statuses = list(Delivery.objects.filter(broadcast=broadcast).values_list("status", flat=True))
        assert 0 < first["sent"] < 60  # it stopped early, after what it had claimed
        assert statuses.count("sent") + statuses.count("delivered") == first["sent"]
        assert statuses.count("queued") == 60 - first["sent"]  # the rest wait; none left claimed or in flight
        with schema_context("public"):
            assert TaskWait.objects.get(pk=waiting.pk).yielded_at is not None
            tick = DueWork.objects.get(tenant=tenant, kind="broadcast-tick", object_id=broadcast.pk)
        # queued again by the next tick, soon, not straight away (the worker goes to the waiting work)
        assert tick.due_at <= timezone.now() + timedelta(seconds=2)
        _clear()
        assert services.broadcast_tick(broadcast_id=broadcast.pk) == "sent"  # the tick queues it again
        assert Delivery.objects.filter(broadcast=broadcast, status__in=["sent", "delivered"]).count() == 60
        assert SandboxMessage.objects.filter(direction="out").count() == 60  # every person once


def test_a_sender_whose_tasks_run_inline_never_gives_way(committed_tenant: Callable[..., Tenant]) -> None:
    """With tasks run inline (Q_SYNC: the tests, a shell) there is no worker to hand over and no
    dispatcher to run the tick that would queue the sender again: a sender that gave way there
    left its broadcast half sent (a browser test waited for 100 % behind a row another test left)."""
    tenant = committed_tenant()
    with in_tenant(tenant):
        broadcast, _ = _approved(tenant, count=30)
        sandbox = connection_sandbox()
        assert sandbox is not None
        Connection.objects.filter(pk=sandbox.pk).update(rate_limit_per_second=20)
        Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.SENDING)
        pipeline.fanout(Broadcast.objects.get(pk=broadcast.pk))
        _clear()
        waiting = _wait("other:broadcast-1", ago=1, urgent=True)

        assert services.broadcast_send(broadcast_id=broadcast.pk, token="t1")["sent"] == 30

        assert Delivery.objects.filter(broadcast=broadcast, status__in=["sent", "delivered"]).count() == 30
        with schema_context("public"):
            assert TaskWait.objects.get(pk=waiting.pk).yielded_at is None
        _clear()


def test_a_start_is_queued_early_and_waits_for_its_minute(committed_tenant: Callable[..., Tenant]) -> None:
    """The dispatcher queues a start up to START_LEAD before its time (so a worker is free when
    it is due even if senders must give one up first); it never claims the broadcast early."""
    tenant = committed_tenant()
    with in_tenant(tenant):
        broadcast, _ = _approved(tenant, count=3)
        due = timezone.now() + timedelta(seconds=1.5)
        Broadcast.objects.filter(pk=broadcast.pk).update(scheduled_at=due)
    with schema_context("public"):
        DueWork.objects.filter(tenant=tenant, object_id=broadcast.pk).update(due_at=due)
        tick = DueWork.objects.create(tenant=tenant, kind="broadcast-tick", object_id=broadcast.pk + 1000, due_at=due)
        assert dispatch_due() >= 1  # the start; a tick is not queued before its time
        assert DueWork.objects.get(pk=tick.pk).enqueued_at is None
        tick.delete()
    with in_tenant(tenant):  # tasks run inline here: the start waited, then sent
        sent = Broadcast.objects.get(pk=broadcast.pk)
        assert sent.status == Broadcast.Status.SENT
        assert sent.send_started_at is not None and sent.send_started_at >= due


def test_the_start_task_runs_the_first_sender_itself(committed_tenant: Callable[..., Tenant], monkeypatch: Any) -> None:
    """Every worker busy: the senders the start queues wait; the start task has a worker, so it
    sends, and the queued sender of the lease it took does nothing when it finally runs."""
    tenant = committed_tenant()
    _clear()
    with in_tenant(tenant):
        broadcast, _ = _approved(tenant, count=4)
        queued: list[tuple[Any, ...]] = []
        monkeypatch.setattr(core_tasks, "async_task", lambda *args, **kwargs: queued.append(args))
        assert services.broadcast_start(broadcast_id=broadcast.pk) == "sent"
        senders = [args for args in queued if args[2].endswith("broadcast_send_task")]
        assert senders  # the start queued a sender, then ran it itself
        # that queued copy asks for no worker: a sender of another broadcast would give way to a
        # task that finds its lease taken (P2 lost a second per broadcast start that way)
        assert senders[0][-1] is None
        for args in senders:
            assert core_tasks.run_in_schema(*args[1:])["sent"] == 0
        assert SandboxMessage.objects.filter(direction="out").count() == 4  # everyone once


def test_a_start_that_waits_for_its_minute_sees_the_broadcast_moved_later(
    committed_tenant: Callable[..., Tenant], monkeypatch: Any
) -> None:
    tenant = committed_tenant()
    with in_tenant(tenant):
        broadcast, _ = _approved(tenant, count=2)
        due = timezone.now() + timedelta(seconds=1)
        later = due + timedelta(hours=1)
        Broadcast.objects.filter(pk=broadcast.pk).update(scheduled_at=due)

        def editor_moves_it(seconds: float) -> None:  # while the start task waits
            Broadcast.objects.filter(pk=broadcast.pk).update(scheduled_at=later)

        monkeypatch.setattr(sending_module.time, "sleep", editor_moves_it)
        assert services.broadcast_start(broadcast_id=broadcast.pk) == "moved"
        assert Broadcast.objects.get(pk=broadcast.pk).status != Broadcast.Status.SENDING
        assert not Delivery.objects.filter(broadcast=broadcast).exists()


def test_a_tick_takes_no_worker_while_its_broadcasts_sender_works(
    committed_tenant: Callable[..., Tenant], monkeypatch: Any
) -> None:
    """A tick queued while the broadcast's own sender works would make another broadcast's
    sender give way for nothing (P2 lost up to a third of its pace that way): it does not ask
    for a worker. Without a working sender (one that gave way, or died) it does."""
    tenant = committed_tenant()
    with in_tenant(tenant):
        broadcast, _ = _approved(tenant, count=3)
        lease = SenderLease.objects.create(
            broadcast_id=broadcast.pk, token="t1", started=True, heartbeat_at=timezone.now()
        )
    queued: list[tuple[Any, ...]] = []
    monkeypatch.setattr(core_tasks, "async_task", lambda *args, **kwargs: queued.append(args))
    _clear()
    with schema_context("public"):
        DueWork.objects.filter(tenant=tenant, object_id=broadcast.pk).delete()
        tick = DueWork.objects.create(
            tenant=tenant, kind="broadcast-tick", object_id=broadcast.pk, due_at=timezone.now()
        )
        assert dispatch_due() == 1
        assert queued[-1][-1] is None and not TaskWait.objects.exists()  # no wait recorded

        with in_tenant(tenant):  # the sender gave way (its lease is gone) or went silent
            SenderLease.objects.filter(pk=lease.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=1))
        DueWork.objects.filter(pk=tick.pk).update(enqueued_at=None)
        assert dispatch_due() == 1
        wait = TaskWait.objects.get()
        assert (queued[-1][-1], wait.key) == (str(wait.pk), f"{tenant.schema_name}:broadcast-{broadcast.pk}")
        tick.delete()
    _clear()
