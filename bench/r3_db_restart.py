"""R3: PostgreSQL restarts in the middle of a broadcast. Must hold: it completes, nothing lost.
(Only on the embedded database that `make bench` starts; with DATABASE_URL it is skipped.)"""

from __future__ import annotations

import os
import time

from bench import harness
from bench.reliability import db_retry, fake_references, outcome_counts, send_until_a_quarter, setup_whatsapp


def run(*, smoke: bool = False) -> dict[str, object]:
    from broadcasts.models import Broadcast, Delivery
    from core import embedded_db
    from core.tenancy import connection

    pgdata = harness.BASE_DIR / "var" / "postgres-bench"
    if not (pgdata / "postmaster.pid").exists():
        harness.log("R3 skipped: not running on the embedded bench database (DATABASE_URL is set)")
        return {"skipped": "needs the embedded database"}
    size = 2_000 if smoke else 20_000
    rate = 400 if smoke else 1000
    fake, tenant, conn, ch = setup_whatsapp("r3", size, rate=rate)
    procs: list[harness.Proc] = []
    try:
        broadcast, _ = send_until_a_quarter(ch, size, procs, label="r3")
        connection.close()
        restart_started = time.monotonic()
        embedded_db.restart(pgdata)
        restart_seconds = time.monotonic() - restart_started
        harness.log(f"R3 PostgreSQL restarted in {restart_seconds:.1f}s")
        connection.set_tenant(tenant)
        harness.wait_for(
            lambda: db_retry(lambda: Broadcast.objects.get(pk=broadcast.pk).status) == "sent",
            timeout=600,
            interval=1.0,
            what="broadcast finished after the restart",
        )
        counts = db_retry(lambda: outcome_counts(broadcast.pk))
        references = fake_references(fake)
        expected = {f"d{pk}" for pk in Delivery.objects.filter(broadcast=broadcast).values_list("pk", flat=True)}
        result = {
            "recipients": size,
            "outcomes": counts,
            "lost": len(expected - set(references)),
            "duplicates": sum(1 for n in references.values() if n > 1),
            "flagged_possible_duplicates": Delivery.objects.filter(
                broadcast=broadcast, possible_duplicate=True
            ).count(),
            "restart_seconds": round(restart_seconds, 1),
            "workers_survived": all(proc.alive() for proc in procs),  # workers and dispatcher
            "goal": "broadcast completes; nothing lost",
        }
        result["ok"] = result["lost"] == 0 and counts.get("sent", 0) == size
        harness.log(f"R3 {result}")
        harness.write_report("R3" + ("_smoke" if smoke else ""), result)
        return result
    finally:
        for proc in procs:
            proc.stop()
        fake.stop()
        os.environ.pop("R3", None)
