"""Reliability goals that fit the test suite (the heavy ones are `make bench` scenarios):
R5 a STOP while queued, R6 a crash between commit and enqueue, and lease recovery (R1's core)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts import roles
from broadcasts import pipeline, services
from broadcasts.dispatcher import dispatch_due
from broadcasts.models import Broadcast, Delivery
from messengers.models import Contact, SandboxMessage
from messengers.selectors import connection_sandbox
from subscribers.models import Subscription
from tenants.models import DueWork, Tenant
from tests.broadcasts.factories import make_subscribers
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.factories import make_user


def _approved(tenant: Tenant, count: int = 5) -> tuple[Broadcast, list[Any]]:
    sandbox = connection_sandbox()
    assert sandbox is not None
    channel = make_channel("Feinstaub", [], connections=[sandbox])  # called twice per tenant: no keyword to clash
    subscribers = make_subscribers(count, [channel], sandbox)
    suffix = uuid.uuid4().hex[:6]
    editor = make_user(roles.EDITOR, username=f"e{suffix}")
    approver = make_user(roles.APPROVER, username=f"a{suffix}")
    broadcast = services.broadcast_create(author=editor, title="T", channels=[channel], variants={"de": "Hallo"})
    services.broadcast_submit(broadcast=broadcast, actor=editor)
    # approve inside a transaction whose on-commit enqueue is lost, as if the process died there
    with transaction.atomic():
        services.broadcast_approve(broadcast=broadcast, actor=approver)
        transaction.get_connection().run_on_commit = []
    return broadcast, subscribers


def test_r6_a_crash_between_commit_and_enqueue_still_starts_the_broadcast(
    committed_tenant: Callable[..., Tenant],
) -> None:
    tenant = committed_tenant()
    with in_tenant(tenant):
        broadcast, _ = _approved(tenant)
        assert Broadcast.objects.get(pk=broadcast.pk).status == Broadcast.Status.APPROVED  # nothing ran
    with schema_context("public"):
        assert DueWork.objects.filter(tenant=tenant, object_id=broadcast.pk, kind="broadcast-start").exists()
        assert dispatch_due() >= 1  # the dispatcher's next half-second poll (tasks run inline here)
    with in_tenant(tenant):
        assert Broadcast.objects.get(pk=broadcast.pk).status == Broadcast.Status.SENT
        assert Delivery.objects.filter(broadcast=broadcast, status__in=["sent", "delivered"]).count() == 5


def test_r5_a_stop_processed_while_queued_means_no_message_after_it(committed_tenant: Callable[..., Tenant]) -> None:
    tenant = committed_tenant()
    with in_tenant(tenant):
        broadcast, subscribers = _approved(tenant, count=4)
        Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.SENDING)
        pipeline.fanout(Broadcast.objects.get(pk=broadcast.pk))
        stopper, unsubscriber = subscribers[0], subscribers[1]
        # a STOP (all channels) and a channel opt-out arrive while their deliveries are queued
        Contact.objects.filter(subscriber=stopper).update(status=Contact.Status.UNSUBSCRIBED)
        Subscription.objects.filter(subscriber=unsubscriber).update(status=Subscription.Status.UNSUBSCRIBED)
        services.senders_top_up(broadcast_id=broadcast.pk)
        outcomes = dict(Delivery.objects.filter(broadcast=broadcast).values_list("subscriber_id", "status"))
        assert outcomes[stopper.pk] == outcomes[unsubscriber.pk] == "skipped"
        reached = set(SandboxMessage.objects.values_list("address", flat=True))
        stopped = set(Contact.objects.filter(subscriber__in=[stopper, unsubscriber]).values_list("address", flat=True))
        assert reached and not (reached & stopped)


def test_rows_of_a_dead_worker_are_requeued_and_in_flight_ones_flagged(committed_tenant: Callable[..., Tenant]) -> None:
    tenant = committed_tenant()
    with in_tenant(tenant):
        broadcast, _ = _approved(tenant, count=6)
        Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.SENDING)
        pipeline.fanout(Broadcast.objects.get(pk=broadcast.pk))
        sandbox = connection_sandbox()
        rows = pipeline.claim(broadcast.pk, sandbox.pk, 6, "dead-worker")  # type: ignore[union-attr]
        assert len(rows) == 6
        channels = list(broadcast.channels.values_list("pk", flat=True))
        in_flight = pipeline.mark_sending([r.delivery_id for r in rows[:2]], "dead-worker", channels)
        assert len(in_flight) == 2
        # the worker is SIGKILLed here; its lease runs out
        Delivery.objects.filter(broadcast=broadcast).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        claimed, sending = pipeline.sweep_expired_leases(broadcast.pk)
        assert (claimed, sending) == (4, 2)
        flagged = set(
            Delivery.objects.filter(broadcast=broadcast, possible_duplicate=True).values_list("pk", flat=True)
        )
        assert flagged == in_flight
        assert Delivery.objects.filter(broadcast=broadcast, status="queued").count() == 6
        assert services.broadcast_tick(broadcast_id=broadcast.pk) == "sent"  # resumes and completes
        assert Delivery.objects.filter(broadcast=broadcast, status__in=["sent", "delivered"]).count() == 6


def test_pause_resume_and_cancel(committed_tenant: Callable[..., Tenant]) -> None:
    tenant = committed_tenant()
    with in_tenant(tenant):
        broadcast, _ = _approved(tenant, count=3)
        Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.SENDING)
        pipeline.fanout(Broadcast.objects.get(pk=broadcast.pk))
        editor = make_user(roles.EDITOR, username="pauser")
        services.broadcast_pause(broadcast=broadcast, actor=editor, reason="Tippfehler")
        assert services.broadcast_send(broadcast_id=broadcast.pk, token="t1")["sent"] == 0  # paused: nothing goes
        assert Delivery.objects.filter(broadcast=broadcast, status="queued").count() == 3
        services.broadcast_resume(broadcast=broadcast, actor=editor)
        assert Broadcast.objects.get(pk=broadcast.pk).status == Broadcast.Status.SENT
        second, _ = _approved(tenant, count=2)
        Broadcast.objects.filter(pk=second.pk).update(status=Broadcast.Status.SENDING)
        pipeline.fanout(Broadcast.objects.get(pk=second.pk))
        services.broadcast_cancel(broadcast=second, actor=editor)
        assert set(Delivery.objects.filter(broadcast=second).values_list("status", flat=True)) == {"skipped"}
