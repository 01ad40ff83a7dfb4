"""Per-broadcast roll-ups (analytics.rollups.broadcasts): every number equals a brute-force count
over generated data, after the first fold, after late status events, clicks and opt-outs, after
replays, when run twice, and when rebuilt from scratch."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection as dj_connection
from django.db import transaction
from django.test import Client
from django.utils import timezone

from analytics.models import BroadcastStats, BroadcastStatsMark
from analytics.rollups.broadcasts import as_figures, broadcast_stats_fold
from broadcasts import links
from broadcasts.models import Broadcast, Delivery, TrackedLink
from broadcasts.services import sending
from broadcasts.services.status_sink import delivery_apply_statuses
from core.tenancy import connection
from messengers.adapters.base import StatusEvent
from subscribers.models import ConsentEvent, Source
from tenants.models import Tenant
from tests.analytics.broadcast_world import World, brute_force, late_events, make_world
from tests.conftest import in_tenant


def _set_tracking(tenant: Tenant, mode: str) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(link_tracking=mode)
    tenant.refresh_from_db()
    connection.set_tenant(tenant)


def _assert_matches(world: World, *, per_recipient: bool) -> dict[int, dict[str, Any]]:
    stored = {s.broadcast_id: as_figures(s) for s in BroadcastStats.objects.all()}
    assert set(stored) == {b.pk for b in world.broadcasts}
    now = max(s.computed_at for s in BroadcastStats.objects.all())
    for broadcast in world.broadcasts:
        expected = brute_force(broadcast, now=now, per_recipient=per_recipient)
        assert stored[broadcast.pk] == expected, f"broadcast {broadcast.pk}"
    return stored


def _apply(world: World, events: list[Any]) -> None:
    by_connection: dict[int, list[Any]] = {}
    ids = {e.provider_message_id for e in events}
    owners = dict(
        Delivery.objects.filter(provider_message_id__in=ids).values_list("provider_message_id", "connection_id")
    )
    for event in events:
        by_connection.setdefault(owners[event.provider_message_id], []).append(event)
    for connection_id, batch in by_connection.items():
        delivery_apply_statuses(connection_id=connection_id, events=batch)


@pytest.mark.parametrize("seed", [7, 2026, 424242])
def test_every_figure_equals_a_brute_force_count(tenant: Tenant, seed: int) -> None:
    _set_tracking(tenant, "per_recipient")
    rng = random.Random(seed)
    world = make_world(rng)
    report = broadcast_stats_fold()
    assert report["computed"] == len(world.broadcasts)
    _assert_matches(world, per_recipient=True)

    # late status events after the roll-up ran: marked on the status path, folded next time
    events = late_events(rng, world)
    _apply(world, events)
    assert BroadcastStatsMark.objects.exists()
    broadcast_stats_fold()
    assert not BroadcastStatsMark.objects.exists()
    first = _assert_matches(world, per_recipient=True)

    # replays change no row, so they leave no mark, and the figures stay
    _apply(world, list(reversed(events)))
    assert not BroadcastStatsMark.objects.exists()
    broadcast_stats_fold()
    assert _assert_matches(world, per_recipient=True) == first

    # running twice, and a rebuild from scratch, give the same numbers
    broadcast_stats_fold()
    broadcast_stats_fold(full=True)
    assert {s.broadcast_id: as_figures(s) for s in BroadcastStats.objects.all()} == first


def test_clicks_and_opt_outs_after_the_fold_are_counted(tenant: Tenant, client_a: Client) -> None:
    _set_tracking(tenant, "per_recipient")
    rng = random.Random(5)
    world = make_world(rng, broadcasts=3, people=30)
    broadcast = world.broadcasts[0]
    Broadcast.objects.filter(pk=broadcast.pk).update(
        status=Broadcast.Status.SENT, send_started_at=timezone.now() - timedelta(hours=1)
    )
    Delivery.objects.filter(broadcast=broadcast, status__in=["queued"]).update(status="skipped", error_kind="cancelled")
    Delivery.objects.filter(broadcast=broadcast).exclude(sent_at=None).update(
        sent_at=timezone.now() - timedelta(minutes=50)
    )
    broadcast_stats_fold()
    _assert_matches(world, per_recipient=True)

    # a click through the real link view, by someone who received it
    link = TrackedLink.objects.create(broadcast=broadcast, position=9, url="https://example.org/neu")
    delivery = Delivery.objects.filter(broadcast=broadcast).exclude(sent_at=None).first()
    assert delivery is not None
    token = links.link_token(tenant.schema_name, link.pk, delivery.pk)
    assert client_a.get(f"/l/{token}", HTTP_USER_AGENT="Mozilla/5.0").status_code == 302
    assert BroadcastStatsMark.objects.filter(broadcast_id=broadcast.pk).exists()
    # … and an opt-out of the person, right now (inside the 24-hour window)
    assert delivery.subscriber is not None
    ConsentEvent.objects.create(
        subscriber=delivery.subscriber, kind=ConsentEvent.Kind.OPT_OUT, source=Source.KEYWORD, at=timezone.now()
    )
    broadcast_stats_fold()
    stored = _assert_matches(world, per_recipient=True)
    assert stored[broadcast.pk]["unique_clicks"] >= 1 and stored[broadcast.pk]["unsubscribes"] >= 1


def test_aggregate_only_tenants_get_no_per_person_click_figures(tenant: Tenant) -> None:
    _set_tracking(tenant, "aggregate")
    world = make_world(random.Random(11), broadcasts=3, people=20)
    broadcast_stats_fold()
    stored = _assert_matches(world, per_recipient=False)
    assert all(s["unique_clicks"] is None and s["timeline"]["clicked"] is None for s in stored.values())


def test_a_fold_with_nothing_new_computes_only_what_is_still_open(tenant: Tenant) -> None:
    world = make_world(random.Random(3), broadcasts=4, people=10)
    broadcast_stats_fold()
    still_open = BroadcastStats.objects.filter(settled=False).count()
    assert broadcast_stats_fold()["computed"] == still_open
    assert still_open == sum(b.status == Broadcast.Status.SENDING for b in world.broadcasts)


def test_the_end_of_a_broadcast_folds_its_figures(tenant: Tenant, django_capture_on_commit_callbacks: Any) -> None:
    world = make_world(random.Random(8), broadcasts=1, people=12)
    broadcast = world.broadcasts[0]
    Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.SENDING, fanout_done=True)
    Delivery.objects.filter(broadcast=broadcast, status="queued").update(status="skipped", error_kind="cancelled")
    with django_capture_on_commit_callbacks(execute=True):
        assert sending._maybe_finish(broadcast.pk)
    stats = BroadcastStats.objects.get(broadcast=broadcast)
    assert stats.settled and stats.recipients == Delivery.objects.filter(broadcast=broadcast).count()


def test_rebuild_command_runs_in_every_tenant_and_keeps_them_apart(tenant: Tenant, tenant_b: Tenant) -> None:
    world = make_world(random.Random(9), broadcasts=2, people=10)
    with in_tenant(tenant_b):
        assert not BroadcastStats.objects.exists()
    connection.set_schema_to_public()
    out = StringIO()
    call_command("analytics_rebuild", "--schema", tenant.schema_name, "--schema", tenant_b.schema_name, stdout=out)
    assert "test_a" in out.getvalue() and "test_b" in out.getvalue()
    with in_tenant(tenant):
        assert BroadcastStats.objects.count() == len(world.broadcasts)
    with in_tenant(tenant_b):
        assert not BroadcastStats.objects.exists()


def test_the_roll_up_tables_exist_only_where_they_belong(tenant: Tenant) -> None:
    with dj_connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_name IN ('analytics_broadcaststats', 'analytics_tenantrollup') "
            "AND table_schema IN ('public', %s)",
            [tenant.schema_name],
        )
        found = set(cursor.fetchall())
    assert found == {("public", "analytics_tenantrollup"), (tenant.schema_name, "analytics_broadcaststats")}


def test_a_status_batch_writes_one_mark_per_broadcast(tenant: Tenant) -> None:
    world = make_world(random.Random(4), broadcasts=2, people=20)
    rows = list(
        Delivery.objects.filter(broadcast=world.broadcasts[0]).exclude(provider_message_id="").exclude(status="read")
    )
    assert rows
    events = [StatusEvent(provider_message_id=r.provider_message_id, status="read", at=timezone.now()) for r in rows]
    _apply(world, events)
    # one row per sink call (one per connection in the batch), naming only the broadcast touched
    marks = list(BroadcastStatsMark.objects.values_list("broadcast_id", flat=True))
    assert marks == [world.broadcasts[0].pk] * len({r.connection_id for r in rows})


def test_a_finished_broadcasts_page_counts_come_from_the_roll_up_unchanged(tenant: Tenant) -> None:
    """The broadcast page reads a settled broadcast's progress and "what went out" from its
    roll-up instead of scanning its deliveries: both must equal the live count."""
    from analytics.selectors_broadcasts import settled_progress
    from broadcasts.selectors import broadcast_progress, broadcast_sent_content

    world = make_world(random.Random(12), broadcasts=6, people=30)
    broadcast_stats_fold()
    compared = 0
    for broadcast in world.broadcasts:
        stats = BroadcastStats.objects.get(broadcast=broadcast)
        progress = settled_progress(stats, broadcast)
        if progress is None:
            assert broadcast.status == Broadcast.Status.SENDING
            continue
        compared += 1
        assert progress == broadcast_progress(broadcast)
        groups = [(p, look, lang, tpl, n) for p, look, lang, tpl, n in stats.went_out]
        assert broadcast_sent_content(broadcast, groups=groups) == broadcast_sent_content(broadcast)
    assert compared


def test_a_change_committed_while_a_fold_runs_is_folded_next_time(committed_tenant: Callable[..., Tenant]) -> None:
    """A status batch whose transaction is still open when the fold takes the marks: the fold
    sees neither its rows nor its mark, and the next fold picks both up (nothing is lost)."""
    tenant = committed_tenant()
    with in_tenant(tenant):
        world = make_world(random.Random(31), broadcasts=2, people=20)
        Broadcast.objects.filter(pk__in=[b.pk for b in world.broadcasts]).update(status=Broadcast.Status.SENT)
        broadcast_stats_fold()
        target = Delivery.objects.filter(broadcast=world.broadcasts[0], status__in=["sent", "delivered"]).first()
        assert target is not None
        before = BroadcastStats.objects.get(broadcast=world.broadcasts[0]).read
        event = StatusEvent(provider_message_id=target.provider_message_id, status="read", at=timezone.now())

        opened, release = threading.Event(), threading.Event()

        def apply_slowly() -> None:
            with in_tenant(tenant), transaction.atomic():
                delivery_apply_statuses(connection_id=target.connection_id, events=[event])
                opened.set()
                release.wait(30)
            dj_connection.close()

        worker = threading.Thread(target=apply_slowly)
        worker.start()
        try:
            assert opened.wait(30)
            broadcast_stats_fold()  # the mark is not committed yet: this fold cannot see it
            assert BroadcastStats.objects.get(broadcast=world.broadcasts[0]).read == before
        finally:
            release.set()
            worker.join(30)
        assert BroadcastStatsMark.objects.filter(broadcast_id=world.broadcasts[0].pk).exists()
        broadcast_stats_fold()
        assert BroadcastStats.objects.get(broadcast=world.broadcasts[0]).read == before + 1
        _assert_matches(world, per_recipient=False)
