"""R2: the fake provider misbehaves: 5 % 5xx, 1 % timeouts, 2 % rate limits (429 / 130429 with
retry_after), and some recipients permanently unreachable (131026). Must hold: every message
ends `sent` or permanently `failed` with a reason; retry_after honoured; permanent errors never
retried. A second broadcast against a provider failing 90 % of sends pauses itself."""

from __future__ import annotations

import time

from bench import harness
from bench.reliability import outcome_counts, setup_whatsapp


def run(*, smoke: bool = False) -> dict[str, object]:
    from django.db.models import Max

    from broadcasts.models import Broadcast, Delivery
    from messengers.models import Contact

    size = 600 if smoke else 5_000
    fake, tenant, conn, ch = setup_whatsapp(
        "r2",
        size,
        rate=500,
        fake_args=(
            "--error-rate",
            "0.05",
            "--timeout-rate",
            "0.01",
            "--timeout-hold",
            "12",
            "--rate-limit-rate",
            "0.02",
            "--seed",
            "42",
        ),
    )
    procs: list[harness.Proc] = []
    try:
        unreachable = list(Contact.objects.order_by("pk").values_list("address", flat=True)[:20])
        for address in unreachable:
            fake.post("faults", {"recipients": {address.lstrip("+"): {"kind": "error", "code": 131026}}})
        workers = harness.start_workers(4, name="worker-r2")
        dispatcher = harness.start_dispatcher()
        procs += [workers, dispatcher]
        time.sleep(3)
        started = time.monotonic()
        broadcast = harness.approved_broadcast(ch, template=("hello_world", "en_US"))
        harness.wait_for(
            lambda: Broadcast.objects.get(pk=broadcast.pk).status in ("sent", "paused"),
            timeout=900,
            interval=1.0,
            what="broadcast finished",
        )
        seconds = time.monotonic() - started
        broadcast.refresh_from_db()
        counts = outcome_counts(broadcast.pk)
        failed = Delivery.objects.filter(broadcast=broadcast, status="failed")
        without_reason = failed.filter(error_kind="").count() + failed.filter(error_detail="").count()
        permanent_retried = Delivery.objects.filter(
            broadcast=broadcast, contact__address__in=unreachable, attempts__gt=1
        ).count()
        unreachable_failed = Delivery.objects.filter(
            broadcast=broadcast, contact__address__in=unreachable, status="failed", error_kind="not_on_messenger"
        ).count()
        retried = Delivery.objects.filter(broadcast=broadcast, attempts__gt=1).count()
        fake_stats = fake.stats()
        result: dict[str, object] = {
            "recipients": size,
            "seconds": round(seconds, 1),
            "broadcast_status": broadcast.status,
            "outcomes": counts,
            "failed_without_reason": without_reason,
            "unreachable_failed_permanently": unreachable_failed,
            "permanent_errors_retried": permanent_retried,
            "rows_retried": retried,
            "max_attempts": Delivery.objects.filter(broadcast=broadcast).aggregate(m=Max("attempts"))["m"],
            "fake_outcomes": fake_stats["outcomes"],
            "contacts_blocked": Contact.objects.filter(status="blocked").count(),
        }
        # a provider that fails nearly everything: the broadcast must pause itself
        fake.post("faults", {"clear": True})
        fake.post("faults", {"rates": [{"kind": "5xx", "rate": 0.9}]})
        second = harness.approved_broadcast(ch, template=("hello_world", "en_US"))
        harness.wait_for(
            lambda: Broadcast.objects.get(pk=second.pk).status in ("paused", "sent"),
            timeout=300,
            interval=1.0,
            what="second broadcast paused",
        )
        second.refresh_from_db()
        result["auto_pause"] = {"status": second.status, "reason": second.paused_reason}
        result["goal"] = (
            "all end sent or failed with a reason; permanent errors never retried; too many errors pause the broadcast"
        )
        result["ok"] = (
            broadcast.status == "sent"
            and not counts.get("queued")
            and without_reason == 0
            and permanent_retried == 0
            and unreachable_failed == len(unreachable)
            and second.status == "paused"
        )
        harness.log(f"R2 {result}")
        harness.write_report("R2" + ("_smoke" if smoke else ""), result)
        return result
    finally:
        for proc in procs:
            proc.stop()
        fake.stop()
