"""What one message costs the primary: row writes and WAL bytes per message, send and statuses.

    python -m core.devrun bench -- .venv/bin/python -m bench.wal_per_message [--size 5000]

Not a `make bench` scenario (it measures no speed and writes no report): the figures behind
docs/operations.md ("Beyond one PostgreSQL"). Runs against the bench database (its own embedded
PostgreSQL under var/, so the WAL counted is this script's and its processes' only).

Two phases, each measured from snapshots of pg_stat_wal (records, full-page images, bytes),
pg_current_wal_lsn(), pg_stat_database (commits) and pg_stat_user_tables (rows inserted,
updated, deleted) taken with the workers stopped, so every backend has flushed its statistics:

  send      a WhatsApp broadcast to `size` subscribers through the real pipeline (dispatcher,
            qcluster workers, fake Graph API on loopback) until every delivery is `sent`;
  statuses  three status events per message (sent, delivered, read), stored one per call as the
            webhook view stores a one-event POST, then applied by the workers until none is
            pending (statuses reach the deliveries, the analytics marks).

The subscriber rows themselves (written by COPY before the first snapshot) are not counted.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from datetime import timedelta
from typing import Any

from bench import harness


def _snapshot() -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT 1")  # the flush happens when this backend goes idle
    time.sleep(1.2)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT wal_records, wal_fpi, wal_bytes::bigint FROM pg_stat_wal")
        records, fpi, wal_bytes = cursor.fetchone()
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        lsn = cursor.fetchone()[0]
        cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        commits = cursor.fetchone()[0]
        cursor.execute(
            "SELECT CASE WHEN schemaname LIKE 'bench\\_%%' THEN '<tenant>' ELSE schemaname END, relname, "
            "n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd FROM pg_stat_user_tables"
        )
        tables: Counter[tuple[str, str, str]] = Counter()
        for schema, table, ins, upd, dele, hot in cursor.fetchall():
            tables[(schema, table, "ins")] += ins
            tables[(schema, table, "upd")] += upd
            tables[(schema, table, "del")] += dele
            tables[(schema, table, "hot")] += hot
        cursor.execute("SELECT pg_wal_lsn_diff(%s, '0/0')::bigint", [lsn])
        lsn_bytes = cursor.fetchone()[0]
    return {
        "records": records,
        "fpi": fpi,
        "wal_bytes": wal_bytes,
        "lsn": lsn_bytes,
        "commits": commits,
        "tables": tables,
    }


def _report(phase: str, before: dict[str, Any], after: dict[str, Any], messages: int, seconds: float) -> dict[str, Any]:
    tables = after["tables"] - before["tables"]  # Counter subtraction keeps positives only
    writes = sum(v for (_, _, op), v in tables.items() if op in ("ins", "upd", "del"))
    hot = sum(v for (_, _, op), v in tables.items() if op == "hot")
    per_table: Counter[str] = Counter()
    for (schema, table, op), v in tables.items():
        if op in ("ins", "upd", "del"):
            per_table[f"{schema}.{table} {op}"] += v
    result = {
        "phase": phase,
        "messages": messages,
        "seconds": round(seconds, 1),
        "row_writes_per_msg": round(writes / messages, 2),
        "hot_updates_share": round(hot / max(1, sum(v for (_, _, op), v in tables.items() if op == "upd")), 2),
        "wal_bytes_per_msg": round((after["lsn"] - before["lsn"]) / messages),
        "wal_records_per_msg": round((after["records"] - before["records"]) / messages, 1),
        "full_page_images_per_msg": round((after["fpi"] - before["fpi"]) / messages, 2),
        "commits_per_msg": round((after["commits"] - before["commits"]) / messages, 2),
        "row_writes_by_table_per_msg": {k: round(v / messages, 3) for k, v in per_table.most_common(14)},
    }
    print(f"\n== {phase} ({messages} messages, {seconds:.1f} s) ==")
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"    {k}: {v}")
        elif key not in ("phase", "messages", "seconds"):
            print(f"{key}: {value}")
    return result


def run(size: int = 5000, workers: int = 2) -> list[dict[str, Any]]:
    from django.db.models import Q
    from django.utils import timezone

    from broadcasts.models import Delivery
    from core.tenancy import connection
    from messengers.adapters.base import StatusEvent, StatusName
    from messengers.models import WebhookEvent
    from messengers.services import webhook_events_store

    harness.drop_bench_tenants()
    fake = harness.whatsapp_fake()
    results = []
    procs: list[harness.Proc] = []
    try:
        tenant = harness.fresh_tenant("wal")
        connection.set_tenant(tenant)
        conn = harness.whatsapp_connection(fake, rate=50_000)
        ch = harness.channel("WAL", [conn.pk], requires_approval=True)
        harness.bulk_subscribers(tenant, size, [ch.pk], conn.pk)
        env = {"BROADCAST_SENDERS": str(workers * 2)}

        # phase 1: the send
        before = _snapshot()
        procs = [harness.start_workers(workers, extra_env=env), harness.start_dispatcher()]
        time.sleep(3)
        t0 = time.monotonic()
        broadcast = harness.approved_broadcast(ch, template=("hello_world", "en_US"))
        harness.wait_for(
            lambda: (
                not Delivery.objects.filter(broadcast=broadcast).exclude(status="sent").exists()
                and Delivery.objects.filter(broadcast=broadcast).count() >= size
            ),
            timeout=120 + size / 50,
            interval=0.5,
            what="every delivery sent",
        )
        seconds = time.monotonic() - t0
        time.sleep(2)  # the broadcast's last tick marks it sent
        for proc in procs:
            proc.stop()
        procs = []
        results.append(_report("send", before, _snapshot(), size, seconds))

        # phase 2: three status events per message, one per store call, applied by the workers
        pids = list(
            Delivery.objects.filter(broadcast=broadcast).values_list("provider_message_id", flat=True).order_by("pk")
        )
        before = _snapshot()
        procs = [harness.start_workers(workers, extra_env=env), harness.start_dispatcher()]
        time.sleep(3)
        t0 = time.monotonic()
        base = timezone.now()
        statuses: tuple[StatusName, ...] = ("sent", "delivered", "read")
        for step, status in enumerate(statuses):
            for pid in pids:
                event = StatusEvent(provider_message_id=pid, status=status, at=base + timedelta(seconds=step))
                webhook_events_store(connection=conn, events=[event], throttle=True)
        harness.wait_for(
            lambda: (
                not WebhookEvent.objects.filter(Q(state=WebhookEvent.State.PENDING)).exists()
                and not Delivery.objects.filter(broadcast=broadcast).exclude(status="read").exists()
            ),
            timeout=120 + size / 20,
            interval=0.5,
            what="every status applied",
        )
        seconds = time.monotonic() - t0
        for proc in procs:
            proc.stop()
        procs = []
        results.append(_report("statuses (3 events per message)", before, _snapshot(), size, seconds))
        return results
    finally:
        for proc in procs:
            proc.stop()
        fake.stop()
        connection.set_schema_to_public()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wal_per_message")
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    harness.setup_django()
    from django.core.management import call_command

    call_command("platform_setup", verbosity=0)
    run(size=args.size, workers=args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
