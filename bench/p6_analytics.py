"""P6: analytics with 100,000 subscribers and 1,000,000 Delivery rows (ten sent broadcasts of
100,000 recipients each, with delivered/read times, clicks and opt-outs drawn in SQL).

Reported (quality.md P6, issue 12 item 9):
- `rebuild_s`: `analytics_rebuild` of the tenant (every roll-up from scratch);
- `rollup_s`: one incremental fold after 10,000 new status changes (applied through the real
  status sink, 1,000 per batch, as webhook apply runs do);
- `status_apply_ms_per_1000` with and without the change marks the sink writes for analytics
  (two runs on different rows, so noisy), and `mark_ms_per_1000`: the mark statement alone for a
  batch of 1,000 changed rows, which is what the roll-up adds to the hot status path;
- page server times (median of several loads, in-process, after a warm-up) and query counts:
  `broadcast_ms` (a 100,000-recipient broadcast's admin page with its figures) and
  `results_ms` (the comparison of recent broadcasts). `queries` is the largest count of any page.

More pages join through PAGES below: `dashboard_ms` (the tenant start page with its dashboard)
and `channel_ms` (the channel figures list); `queries` covers them too.

Goal: every page <= 300 ms with a constant number of queries; no page reads Delivery rows for
the figures (they come from the roll-up).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from bench import harness

BROADCASTS = 10
PAGE_GOAL_MS = 300.0


def _fill(tenant: Any, *, subscribers: int, channel_id: int, connection_id: int) -> list[int]:
    """BROADCASTS sent broadcasts, each to every subscriber, with outcomes, clicks and opt-outs."""
    from django.utils import timezone

    from accounts import roles
    from accounts.services import user_create
    from broadcasts import services
    from broadcasts.models import Broadcast
    from channels.models import Channel
    from core.tenancy import connection

    schema = tenant.schema_name
    author = user_create(username="p6author", email="author@p6.example", role_names=[roles.EDITOR])
    channel = Channel.objects.get(pk=channel_id)
    ids = []
    now = timezone.now()
    for index in range(BROADCASTS):
        broadcast = services.broadcast_create(
            author=author,
            title=f"P6 Aussendung {index + 1}",
            channels=[channel],
            variants={"de": "Feinstaubalarm: https://example.org/feinstaub"},
        )
        start = now - timedelta(days=3 * (BROADCASTS - index), minutes=7)
        Broadcast.objects.filter(pk=broadcast.pk).update(
            status=Broadcast.Status.SENT, send_started_at=start, send_finished_at=start + timedelta(minutes=40)
        )
        ids.append(broadcast.pk)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO "{schema}".broadcasts_delivery
                  (broadcast_id, subscriber_id, contact_id, connection_id, language, use_template, status, attempts,
                   next_attempt_at, claimed_by, provider_message_id, sent_at, delivered_at, read_at, error_kind,
                   error_code, error_detail, possible_duplicate)
                SELECT %(b)s, x.id, NULL, %(conn)s, 'de', false,
                       CASE WHEN x.r < 0.03 THEN 'failed' WHEN x.r < 0.2 THEN 'sent'
                            WHEN x.r < 0.5 THEN 'delivered' ELSE 'read' END,
                       1, %(start)s, '', 'p6-' || %(b)s || '-' || x.id,
                       x.sent_at,
                       CASE WHEN x.r >= 0.2 THEN x.sent_at + x.d * interval '2 hours' END,
                       CASE WHEN x.r >= 0.5 THEN x.sent_at + x.d * interval '2 hours' + x.q * x.q * interval '20 hours' END,
                       CASE WHEN x.r < 0.03 THEN 'blocked' ELSE '' END, '', '', false
                  FROM (SELECT s.id, random() AS r, random() AS d, random() AS q,
                               %(start)s::timestamptz + random() * interval '40 minutes' AS sent_at
                          FROM "{schema}".subscribers_subscriber s) x
                """,  # noqa: S608 - the schema is ours
                {"b": broadcast.pk, "conn": connection_id, "start": start},
            )
            cursor.execute(
                f'INSERT INTO "{schema}".broadcasts_trackedlink (broadcast_id, position, url, clicks) '  # noqa: S608
                "VALUES (%s, 0, 'https://example.org/feinstaub', 0) RETURNING id",
                [broadcast.pk],
            )
            link_id = cursor.fetchone()[0]
            cursor.execute(
                f"""
                INSERT INTO "{schema}".broadcasts_linkclick (link_id, delivery_id, at)
                SELECT %(link)s, d.id, d.read_at + random() * interval '1 hour'
                  FROM "{schema}".broadcasts_delivery d
                 WHERE d.broadcast_id = %(b)s AND d.status = 'read' AND random() < 0.12
                """,  # noqa: S608
                {"link": link_id, "b": broadcast.pk},
            )
            cursor.execute(
                f'UPDATE "{schema}".broadcasts_trackedlink SET clicks = '  # noqa: S608
                f'(SELECT count(*) FROM "{schema}".broadcasts_linkclick WHERE link_id = %s) WHERE id = %s',
                [link_id, link_id],
            )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO "{schema}".subscribers_consentevent (subscriber_id, channel_id, kind, source, source_detail,
                                                             at, evidence, explicit)
            SELECT s.id, NULL, 'opt_out', 'keyword', '', now() - random() * interval '30 days', '', false
              FROM "{schema}".subscribers_subscriber s
             WHERE random() < %s
            """,  # noqa: S608
            [0.01],
        )
        for table in ("broadcasts_delivery", "broadcasts_linkclick", "subscribers_consentevent"):
            cursor.execute(f'ANALYZE "{schema}".{table}')
    return ids


def _apply_status_changes(broadcast_id: int, count: int) -> float:
    """`count` read receipts for sent or delivered rows of the broadcast, through the status sink in
    batches of 1,000 (one transaction each, as the webhook apply run does). Returns seconds."""
    from django.db import transaction
    from django.utils import timezone

    from broadcasts.models import Delivery
    from broadcasts.services.status_sink import delivery_apply_statuses
    from messengers.adapters.base import StatusEvent

    rows = list(
        Delivery.objects.filter(broadcast_id=broadcast_id, status__in=["sent", "delivered"])
        .order_by("id")
        .values_list("connection_id", "provider_message_id")[:count]
    )
    now = timezone.now()
    started = time.perf_counter()
    for start in range(0, len(rows), 1000):
        batch = rows[start : start + 1000]
        with transaction.atomic():
            delivery_apply_statuses(
                connection_id=batch[0][0],
                events=[StatusEvent(provider_message_id=pid, status="read", at=now) for _, pid in batch],
            )
    return time.perf_counter() - started


def _mark_ms_per_1000(broadcast_id: int, repeats: int = 15) -> float:
    """What the status path pays for analytics: the mark statement for a batch of 1,000 changed
    deliveries (median, in a transaction that is rolled back, so nothing stays behind)."""
    from django.db import transaction

    from analytics.rollups.broadcasts import broadcast_stats_mark
    from broadcasts.models import Delivery

    ids = list(Delivery.objects.filter(broadcast_id=broadcast_id).order_by("id").values_list("pk", flat=True)[:1000])
    times = []
    for _ in range(repeats):
        with transaction.atomic():
            started = time.perf_counter()
            broadcast_stats_mark(delivery_ids=ids)
            times.append((time.perf_counter() - started) * 1000)
            transaction.set_rollback(True)
    return round(statistics.median(times), 2)


def _page_timing(client: Any, path: str, repeats: int) -> tuple[float, int]:
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    from core.tenancy import connection

    connection.set_schema_to_public()
    response = client.get(path)  # warm-up
    assert response.status_code == 200, (path, response.status_code)
    times = []
    for _ in range(repeats):
        connection.set_schema_to_public()
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    connection.set_schema_to_public()
    with CaptureQueriesContext(db) as queries:
        client.get(path)
    connection.set_schema_to_public()
    return round(statistics.median(times), 1), len(queries.captured_queries)


# (report key, path of the page given the latest broadcast's id). Others add theirs here.
PAGES: list[tuple[str, Callable[[int], str]]] = [
    ("broadcast_ms", lambda broadcast_id: f"/admin/broadcasts/broadcast/{broadcast_id}/change/"),
    ("results_ms", lambda broadcast_id: "/admin/analytics/broadcasts/"),
    # the tenant start page with its dashboard (headline numbers, charts, best channels)
    ("dashboard_ms", lambda broadcast_id: "/admin/?days=30"),
    # the channel figures list (every channel, best by subscribers and by engagement)
    ("channel_ms", lambda broadcast_id: "/admin/analytics/channels/?days=30"),
]


# (report key, path given the latest broadcast's id and one subscriber's address): the API's reads
API_READS: list[tuple[str, Callable[[int, str], str]]] = [
    ("api_channels_ms", lambda broadcast_id, address: "/api/v1/channels/"),
    ("api_subscriber_lookup_ms", lambda broadcast_id, address: f"/api/v1/subscribers/lookup/?address={quote(address)}"),
    ("api_broadcasts_ms", lambda broadcast_id, address: "/api/v1/broadcasts/"),
    ("api_broadcast_stats_ms", lambda broadcast_id, address: f"/api/v1/broadcasts/{broadcast_id}/stats/"),
    ("api_headline_ms", lambda broadcast_id, address: "/api/v1/analytics/headline/?days=30"),
    ("api_conversations_ms", lambda broadcast_id, address: "/api/v1/inbox/conversations/?status=all"),
]


def run(*, smoke: bool = False) -> dict[str, Any]:
    from django.core.management import call_command
    from django.test import Client, override_settings

    from accounts import roles
    from accounts.services import user_create
    from analytics.models import BroadcastStatsMark
    from analytics.rollups.broadcasts import broadcast_stats_fold
    from core.tenancy import connection
    from messengers.selectors import connection_sandbox
    from tenants.models import Tenant

    subscribers = 2_000 if smoke else 100_000
    changes = 500 if smoke else 10_000
    harness.drop_bench_tenants()
    tenant = harness.fresh_tenant("p6")
    Tenant.objects.filter(pk=tenant.pk).update(link_tracking="per_recipient")
    tenant.refresh_from_db()
    connection.set_tenant(tenant)
    host = tenant.domains.get(is_primary=True).domain
    sandbox = connection_sandbox()
    assert sandbox is not None
    ch = harness.channel("P6", [sandbox.pk], requires_approval=False)
    harness.bulk_subscribers(tenant, subscribers, [ch.pk], sandbox.pk)
    connection.set_tenant(tenant)
    started = time.perf_counter()
    broadcast_ids = _fill(tenant, subscribers=subscribers, channel_id=ch.pk, connection_id=sandbox.pk)
    harness.log(f"P6: {BROADCASTS} broadcasts × {subscribers} deliveries in {time.perf_counter() - started:.0f} s")

    connection.set_schema_to_public()
    started = time.perf_counter()
    call_command("analytics_rebuild", "--schema", tenant.schema_name, verbosity=0)
    rebuild_s = time.perf_counter() - started
    connection.set_tenant(tenant)

    latest = broadcast_ids[-1]
    # the status path without the marks analytics asks for (on an older broadcast), and with them
    with override_settings(BROADCAST_CHANGE_HOOKS=[]):
        without_marks = _apply_status_changes(broadcast_ids[-2], changes)
    with_marks = _apply_status_changes(latest, changes)
    marks = BroadcastStatsMark.objects.count()
    mark_ms = _mark_ms_per_1000(latest)
    started = time.perf_counter()
    fold = broadcast_stats_fold()
    rollup_s = time.perf_counter() - started
    harness.log(f"P6: rebuild {rebuild_s:.2f} s, fold after {changes} changes {rollup_s:.2f} s ({fold})")

    editor = user_create(username="p6editor", email="editor@p6.example", role_names=[roles.EDITOR])
    client = Client(HTTP_HOST=host, HTTP_ACCEPT_LANGUAGE="de")
    client.force_login(editor)
    result: dict[str, Any] = {
        "subscribers": subscribers,
        "deliveries": subscribers * BROADCASTS,
        "rebuild_s": round(rebuild_s, 2),
        "rollup_s": round(rollup_s, 2),
        "rollup_status_changes": changes,
        "rollup_marks": marks,
        "status_apply_ms_per_1000": round(1000 * with_marks / changes * 1000, 1),
        "status_apply_ms_per_1000_without_marks": round(1000 * without_marks / changes * 1000, 1),
        "mark_ms_per_1000": mark_ms,
    }
    queries = 0
    with override_settings(ALLOWED_HOSTS=["*"]):
        for key, path in PAGES:
            connection.set_tenant(tenant)
            ms, count = _page_timing(client, path(latest), 3 if smoke else 7)
            result[key] = ms
            result[key.replace("_ms", "_queries")] = count
            queries = max(queries, count)
    result["queries"] = queries
    # the REST API's reads on the same 100,000 people and 1,000,000 deliveries (issue 13: lists
    # <= 300 ms), with a key of the editor holding every scope
    from accounts.models import API_SCOPES
    from accounts.services import api_key_create
    from messengers.models import Contact

    connection.set_tenant(tenant)
    _key, secret = api_key_create(name="p6", scopes=list(API_SCOPES), actor=editor, rate_limit=1_000_000)
    address = Contact.objects.order_by("pk").values_list("address", flat=True)[subscribers // 2]
    api = Client(HTTP_HOST=host, HTTP_AUTHORIZATION=f"Bearer {secret}")
    api_queries = 0
    with override_settings(ALLOWED_HOSTS=["*"]):
        for key, read in API_READS:
            connection.set_tenant(tenant)
            ms, count = _page_timing(api, read(latest, address), 3 if smoke else 7)
            result[key] = ms
            result[key.replace("_ms", "_queries")] = count
            api_queries = max(api_queries, count)
    result["api_queries"] = api_queries
    timed = [key for key, _path in [*PAGES, *API_READS]]
    result["goal"] = (
        "each page and API read <= 300 ms server time with constant queries; incremental roll-up after 10,000 changes"
    )
    result["complete"] = bool(fold["computed"] >= 1 and marks >= 1)
    result["goal_met"] = result["complete"] and all(result[key] <= 300 for key in timed)
    result["ok"] = result["goal_met"]
    harness.log(f"P6 {result}")
    harness.write_report("P6" + ("_smoke" if smoke else ""), result)
    return result
