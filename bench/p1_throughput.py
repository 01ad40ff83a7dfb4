"""P1: a 100,000-recipient WhatsApp broadcast from "approved and due" to every Delivery sent,
against the fake Graph API on loopback, with the raw loopback reference of the same run.

The connection's own rate limit is set far above the goal, so the pipeline (not the pacing)
is measured; the fake pushes no webhooks here (P4 measures ingestion).

P1 runs three times (one in smoke mode), each with its own loopback reference measured right
before it, and reports the median ratio, so one noisy reference does not decide the result
(BENCH_P1_RUNS overrides the count). `complete` says every broadcast finished with every message
accepted by the fake; `goal_met` says the quality goal was reached. Each run also records the
database's row writes and WAL bytes per message over the send (the capacity estimate in
docs/operations.md is built from these). P1_4workers is the same with four worker processes."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from bench import harness

GOAL_RATE = 1500.0
GOAL_RATIO = 0.5
GOAL_RSS_MB = 300.0
GOAL_TASKS = 200


def run(
    *, smoke: bool = False, size: int | None = None, workers: int = 2, key: str = "P1", runs: int | None = None
) -> dict[str, object]:
    size = size or (500 if smoke else 100_000)
    runs = runs or int(os.environ.get("BENCH_P1_RUNS", "0")) or (1 if smoke else 3)
    results = []
    for number in range(1, runs + 1):
        harness.log(f"{key} run {number} of {runs}")
        results.append(run_once(smoke=smoke, size=size, workers=workers, label=key))
    ratio = statistics.median(r["ratio"] for r in results)
    rate = statistics.median(r["msgs_per_s"] for r in results)
    complete = all(r["complete"] for r in results)
    rss = max(r["worker_rss_mb"] for r in results)
    tasks = max(r["tasks"] for r in results)
    result: dict[str, object] = {
        "recipients": size,
        "workers": workers,
        "runs": results,
        "ratio_median": round(ratio, 3),
        "msgs_per_s_median": round(rate, 1),
        "row_writes_per_msg_median": round(statistics.median(r["row_writes_per_msg"] for r in results), 2),
        "db_row_writes_per_msg_median": round(statistics.median(r["db_row_writes_per_msg"] for r in results), 2),
        "wal_bytes_per_msg_median": round(statistics.median(r["wal_bytes_per_msg"] for r in results)),
        "worker_rss_mb_max": rss,
        "tasks_max": tasks,
        "goal": (
            f">= {GOAL_RATE:.0f} msg/s and >= {GOAL_RATIO} x reference (median of the runs); "
            f"RSS <= {GOAL_RSS_MB:.0f} MB; <= {GOAL_TASKS} tasks"
        ),
        "complete": complete,
        "goal_met": complete
        and ratio >= GOAL_RATIO
        and rate >= GOAL_RATE
        and rss <= GOAL_RSS_MB
        and tasks <= GOAL_TASKS,
    }
    harness.log(f"{key} median ratio {ratio:.3f}, {rate:.0f} msg/s, complete={complete}")
    harness.write_report(key + ("_smoke" if smoke else ""), result)
    return result


def run_once(*, smoke: bool, size: int, workers: int, label: str) -> dict[str, Any]:
    from broadcasts.models import Broadcast, Delivery
    from core.tenancy import connection

    harness.drop_bench_tenants()
    fake = harness.whatsapp_fake()
    procs: list[harness.Proc] = []
    try:
        reference = harness.loopback_reference(fake, seconds=3 if smoke else 8)
        harness.log(f"{label} loopback reference: {reference:.0f} req/s")
        fake.post("reset")
        tenant = harness.fresh_tenant("p1")
        connection.set_tenant(tenant)
        conn = harness.whatsapp_connection(fake, rate=50_000)
        ch = harness.channel("P1", [conn.pk], requires_approval=True)
        started = time.monotonic()
        harness.bulk_subscribers(tenant, size, [ch.pk], conn.pk)
        harness.log(f"{label} {size} subscribers written in {time.monotonic() - started:.1f}s")
        workers_proc = harness.start_workers(workers, extra_env={"BROADCAST_SENDERS": str(workers * 2)})
        dispatcher = harness.start_dispatcher()
        procs += [workers_proc, dispatcher]
        time.sleep(3)  # let the cluster come up: P1 measures sending, not process start
        before = harness.db_write_counters(tenant.schema_name)
        with harness.Sampler(workers_proc) as memory:
            t0 = time.monotonic()
            broadcast = harness.approved_broadcast(ch, template=("hello_world", "en_US"))
            elapsed = harness.wait_for(
                lambda: Delivery.objects.filter(broadcast=broadcast, status="sent").count() >= size,
                timeout=60 + size / 200,
                interval=0.5,
                what="every delivery sent",
            )
            seconds = time.monotonic() - t0
        # the heartbeat tick finishes the broadcast within a few seconds of its last row
        harness.wait_for(
            lambda: Broadcast.objects.get(pk=broadcast.pk).status == "sent",
            timeout=30,
            interval=0.5,
            what="broadcast finished",
        )
        for proc in procs:
            proc.stop()  # a backend flushes its table statistics when it ends
        after = harness.db_write_counters(tenant.schema_name)
        broadcast.refresh_from_db()
        from django_q.models import Task

        tasks = Task.objects.filter(name__startswith=f"{tenant.schema_name}:").count()
        stats = fake.stats()["sends"]
        rate = size / seconds
        result = {
            "seconds": round(seconds, 2),
            "msgs_per_s": round(rate, 1),
            "reference_per_s": round(reference, 1),
            "ratio": round(rate / reference, 3),
            "worker_rss_mb": round(memory.peak_mb, 1),
            "tasks": tasks,
            "accepted_at_fake": stats["accepted"],
            "broadcast_status": broadcast.status,
            # rows inserted, updated or deleted per message: in the tenant's schema, and in the
            # whole database (the task queue's rows included); WAL written per message
            "row_writes_per_msg": round((after.tenant_rows - before.tenant_rows) / size, 2),
            "db_row_writes_per_msg": round((after.db_rows - before.db_rows) / size, 2),
            "wal_bytes_per_msg": round((after.wal_lsn - before.wal_lsn) / size),
            "complete": broadcast.status == "sent" and stats["accepted"] == size,
        }
        harness.log(f"{label} {result}")
        assert elapsed and stats["accepted"] >= size
        return result
    finally:
        for proc in procs:
            proc.stop()
        fake.stop()
        connection.set_schema_to_public()
