"""P1: a 100,000-recipient WhatsApp broadcast from "approved and due" to every Delivery sent,
against the fake Graph API on loopback, with the raw loopback reference of the same run.

The connection's own rate limit is set far above the goal, so the pipeline (not the pacing)
is measured; the fake pushes no webhooks here (P4 measures ingestion)."""

from __future__ import annotations

import time

from bench import harness


def run(*, smoke: bool = False, size: int | None = None, workers: int = 2) -> dict[str, object]:
    from broadcasts.models import Delivery
    from core.tenancy import connection

    size = size or (500 if smoke else 100_000)
    harness.drop_bench_tenants()
    fake = harness.whatsapp_fake()
    procs: list[harness.Proc] = []
    try:
        reference = harness.loopback_reference(fake, seconds=3 if smoke else 8)
        harness.log(f"P1 loopback reference: {reference:.0f} req/s")
        fake.post("reset")
        tenant = harness.fresh_tenant("p1")
        connection.set_tenant(tenant)
        conn = harness.whatsapp_connection(fake, rate=50_000)
        ch = harness.channel("P1", [conn.pk], requires_approval=True)
        started = time.monotonic()
        harness.bulk_subscribers(tenant, size, [ch.pk], conn.pk)
        harness.log(f"P1 {size} subscribers written in {time.monotonic() - started:.1f}s")
        workers_proc = harness.start_workers(workers, extra_env={"BROADCAST_SENDERS": str(workers * 2)})
        dispatcher = harness.start_dispatcher()
        procs += [workers_proc, dispatcher]
        time.sleep(3)  # let the cluster come up: P1 measures sending, not process start
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
        broadcast.refresh_from_db()
        from django_q.models import Task

        tasks = Task.objects.filter(name__startswith=f"{tenant.schema_name}:").count()
        stats = fake.stats()["sends"]
        rate = size / seconds
        result = {
            "recipients": size,
            "seconds": round(seconds, 2),
            "msgs_per_s": round(rate, 1),
            "reference_per_s": round(reference, 1),
            "ratio": round(rate / reference, 3),
            "worker_rss_mb": round(memory.peak_mb, 1),
            "tasks": tasks,
            "workers": workers,
            "accepted_at_fake": stats["accepted"],
            "broadcast_status": broadcast.status,
            "goal": ">= 1500 msg/s and >= 0.5 x reference; RSS <= 300 MB; <= 200 tasks",
            "ok": broadcast.status == "sent" and stats["accepted"] == size,
        }
        harness.log(f"P1 {result}")
        assert elapsed and stats["accepted"] >= size
        harness.write_report("P1" + ("_smoke" if smoke else ""), result)
        return result
    finally:
        for proc in procs:
            proc.stop()
        fake.stop()
        connection.set_schema_to_public()
