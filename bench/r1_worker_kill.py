"""R1: SIGKILL every worker in the middle of a 20,000-recipient broadcast, then restart them.
Must hold: nobody lost; duplicates no more than the requests in flight at the kill, each one
flagged and logged; sending resumes by itself within 60 s."""

from __future__ import annotations

import signal
import time

from bench import harness
from bench.reliability import fake_references, outcome_counts, send_until_a_quarter, setup_whatsapp


def run(*, smoke: bool = False) -> dict[str, object]:
    from broadcasts.models import Broadcast, Delivery
    from core.tenancy import connection

    size = 2_000 if smoke else 20_000
    rate = 400 if smoke else 1000
    fake, tenant, conn, ch = setup_whatsapp("r1", size, rate=rate)
    procs: list[harness.Proc] = []
    try:
        broadcast, workers = send_until_a_quarter(ch, size, procs, label="r1a")
        workers.stop(signal.SIGKILL, timeout=10)  # every worker process of the cluster, no cleanup
        killed_at = time.monotonic()
        in_flight = Delivery.objects.filter(broadcast=broadcast, status="sending").count()
        claimed = Delivery.objects.filter(broadcast=broadcast, status="claimed").count()
        sent_at_kill = Delivery.objects.filter(broadcast=broadcast, status="sent").count()
        accepted_at_kill = fake.stats()["sends"]["accepted"]
        harness.log(f"R1 killed: {in_flight} sending, {claimed} claimed, {sent_at_kill} recorded sent")
        time.sleep(2)
        restarted = harness.start_workers(4, name="worker-r1b")
        procs.append(restarted)
        harness.wait_for(
            lambda: fake.stats()["sends"]["accepted"] > accepted_at_kill + 10,
            timeout=120,
            interval=0.2,
            what="sending resumed",
        )
        resumed_after = time.monotonic() - killed_at
        harness.wait_for(
            lambda: Broadcast.objects.get(pk=broadcast.pk).status == "sent",
            timeout=300,
            interval=0.5,
            what="broadcast finished",
        )
        counts = outcome_counts(broadcast.pk)
        references = fake_references(fake)
        expected = set(f"d{pk}" for pk in Delivery.objects.filter(broadcast=broadcast).values_list("pk", flat=True))
        lost = len(expected - set(references))
        duplicates = {ref: n for ref, n in references.items() if n > 1}
        flagged = set(
            f"d{pk}"
            for pk in Delivery.objects.filter(broadcast=broadcast, possible_duplicate=True).values_list("pk", flat=True)
        )
        unflagged = sorted(set(duplicates) - flagged)
        result = {
            "recipients": size,
            "outcomes": counts,
            "lost": lost,
            "in_flight_at_kill": in_flight,
            "duplicates": len(duplicates),
            "duplicates_not_flagged": len(unflagged),
            "flagged_possible_duplicates": len(flagged),
            "resumed_after_s": round(resumed_after, 1),
            "goal": "0 lost; duplicates <= in flight at the kill, each flagged/logged; resumes within 60 s",
            "ok": lost == 0 and len(duplicates) <= in_flight and not unflagged and resumed_after <= 60,
        }
        harness.log(f"R1 {result}")
        harness.write_report("R1" + ("_smoke" if smoke else ""), result)
        return result
    finally:
        for proc in procs:
            proc.stop()
        fake.stop()
        connection.set_schema_to_public()
