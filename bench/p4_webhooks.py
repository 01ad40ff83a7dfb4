"""P4: webhook ingestion. The fake Graph API posts 3 status events (sent, delivered, read) per
message for 100,000 messages to our gunicorn server, signed like Meta; workers apply them to the
Delivery rows. Reported: events accepted per second, the fake's POST latency p99, how long
events took from arrival to being applied (p95), and a raw loopback reference (the same pusher
against a trivial aiohttp endpoint) measured in the same run.

Goal (quality.md): >= 2,000 events/s accepted with p99 < 100 ms; applied within p95 <= 5 s;
afterwards every delivery is `read` (no update lost while several workers apply at once).
"""

from __future__ import annotations

import base64
import io
import time

from bench import harness

PNID = "106540352242922"


def _wamid_sequence(first: str, count: int) -> list[str]:
    """The fake numbers its message ids `wamid.` + base64("<wa_id>_<salt><seq:012d>")."""
    raw = base64.b64decode(first.removeprefix("wamid.")).decode()
    prefix, seq = raw[:-12], int(raw[-12:])
    return ["wamid." + base64.b64encode(f"{prefix}{seq + i:012d}".encode()).decode() for i in range(count)]


def _seed_deliveries(tenant: object, broadcast_id: int, connection_id: int, wamids: list[str]) -> None:
    from django.utils import timezone

    from core.tenancy import connection

    schema = tenant.schema_name  # type: ignore[attr-defined]
    now = timezone.now().isoformat()
    buffer = io.StringIO()
    for wamid in wamids:
        buffer.write(f"{broadcast_id}\t{connection_id}\tde\tf\tsent\t1\t{now}\t{wamid}\t{now}\t\t\t\t\tf\t\n")
    connection.ensure_connection()
    raw = connection.connection
    with (
        raw.cursor() as cursor,
        cursor.copy(
            f'COPY "{schema}".broadcasts_delivery (broadcast_id, connection_id, language, use_template, status, '
            "attempts, next_attempt_at, provider_message_id, sent_at, error_kind, error_code, error_detail, claimed_by, "
            "possible_duplicate, subscriber_id) FROM STDIN"
        ) as copy,
    ):
        copy.write(buffer.getvalue().replace("\t\n", "\t\\N\n"))
    raw.commit()


def _reference(count: int, batch: int) -> dict[str, float]:
    """The fake's pusher against a trivial aiohttp endpoint: the ceiling of this box."""
    sink_port = harness.free_port()
    sink = harness.start("p4-sink", [harness.PYTHON, "-m", "bench.p4_sink", str(sink_port)])
    fake = harness.whatsapp_fake(
        "--batch-size",
        str(batch),
        "--webhook-url",
        f"http://127.0.0.1:{sink_port}/hook",
        name="fake-wa-p4ref",
    )
    try:
        harness.wait_http(f"http://127.0.0.1:{sink_port}/hook")
        started = time.monotonic()
        fake.post("synthesize", {"count": count, "phone_number_id": PNID})
        harness.wait_for(
            lambda: fake.stats()["webhooks"]["events"] >= count * 3 and not fake.stats()["webhooks"]["pending"],
            timeout=600,
            interval=0.2,
            what="reference pushed",
        )
        seconds = time.monotonic() - started
        hooks = fake.stats()["webhooks"]
        return {"events_per_s": round(count * 3 / seconds, 1), "p99_ms": hooks["latency_ms"]["p99"]}
    finally:
        fake.stop()
        sink.stop()


def run(*, smoke: bool = False, messages: int | None = None) -> dict[str, object]:
    """Twice: one event per POST (the worst case) and ten per POST (Meta batches under load).
    `ok` is the correctness part (what a smoke run checks): no status update lost."""
    results: dict[str, object] = {}
    for batch in (1, 10):
        results[f"batch{batch}"] = run_once(smoke=smoke, messages=messages, batch=batch)
    results["ok"] = all(isinstance(r, dict) and r["ok"] for r in results.values())
    return results


def run_once(*, smoke: bool = False, messages: int | None = None, batch: int = 1) -> dict[str, object]:
    from broadcasts.models import Broadcast, Delivery
    from core.tenancy import connection
    from messengers.models import WebhookEvent

    messages = messages or (500 if smoke else 100_000)
    harness.drop_bench_tenants()
    reference = _reference(min(messages, 20_000), batch)
    harness.log(f"P4 loopback reference: {reference}")
    port = harness.free_port()
    procs: list[harness.Proc] = []
    fake = harness.whatsapp_fake(
        "--batch-size",
        str(batch),
        "--phone-number-id",
        PNID,
        "--webhook-url",
        f"http://localhost:{port}/webhooks/whatsapp/",
        name="fake-wa-p4",
    )
    try:
        tenant = harness.fresh_tenant("p4")
        connection.set_tenant(tenant)
        conn = harness.whatsapp_connection(fake, rate=1000, phone_number_id=PNID)
        ch = harness.channel("P4", [conn.pk])
        broadcast = harness.approved_broadcast(ch, approve=False)
        Broadcast.objects.filter(pk=broadcast.pk).update(status="sending", fanout_done=True)
        probe = fake.post("synthesize", {"count": 1, "phone_number_id": PNID, "statuses": []})
        # the warm-up below uses the next 300 ids; the measured messages follow them
        wamids = _wamid_sequence(str(probe["first"]), messages + 301)[301:]
        _seed_deliveries(tenant, broadcast.pk, conn.pk, wamids)
        web = harness.start_web(port, workers=3, threads=4)
        workers = harness.start_workers(2, name="worker-p4")
        dispatcher = harness.start_dispatcher()
        procs += [web, workers, dispatcher]
        time.sleep(3)
        # warm up every gunicorn worker and thread (imports, connections, caches) on events that
        # match no delivery, so the measurement starts with the server in its steady state
        fake.post("synthesize", {"count": 300, "phone_number_id": PNID})
        harness.wait_for(
            lambda: not fake.stats()["webhooks"]["pending"], timeout=120, interval=0.5, what="warm-up answered"
        )
        WebhookEvent.objects.all().delete()
        fake.post("reset")
        fake.configure(webhook_url=f"http://localhost:{port}/webhooks/whatsapp/", batch_size=batch)
        started = time.monotonic()
        fake.post("synthesize", {"count": messages, "phone_number_id": PNID})
        harness.wait_for(
            lambda: (
                (fake.stats()["webhooks"]["ok"] + fake.stats()["webhooks"]["gave_up"]) * batch >= messages * 3
                and not fake.stats()["webhooks"]["pending"]
            ),
            # a floor of 100 events/s: a slow or busy machine makes a slow run, not a failed one
            timeout=max(1200, messages * 3 / 100),
            interval=0.5,
            what="every webhook answered",
        )
        accept_seconds = time.monotonic() - started
        hooks = fake.stats()["webhooks"]
        harness.wait_for(
            lambda: not WebhookEvent.objects.exclude(state="applied").exists(),
            timeout=600,
            interval=0.5,
            what="every event applied",
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM applied_at - received_at)), "
                "max(EXTRACT(EPOCH FROM applied_at - received_at)), count(*) FROM messengers_webhookevent"
            )
            p95, worst, stored = cursor.fetchone()
        read = Delivery.objects.filter(broadcast=broadcast, status="read").count()
        rate = messages * 3 / accept_seconds
        result = {
            "messages": messages,
            "events": messages * 3,
            "events_per_post": batch,
            "events_per_s": round(rate, 1),
            "p99_ms": hooks["latency_ms"]["p99"],
            "p50_ms": hooks["latency_ms"]["p50"],
            "non_2xx": hooks["non_2xx"],
            "applied_p95_s": round(float(p95), 3),
            "applied_max_s": round(float(worst), 3),
            "events_stored": stored,
            "deliveries_read": read,
            "reference_per_s": reference["events_per_s"],
            "reference_p99_ms": reference["p99_ms"],
            "ratio": round(rate / reference["events_per_s"], 3),
            "goal": ">= 2000 events/s accepted, p99 < 100 ms; applied p95 <= 5 s; deliveries_read == messages",
            "ok": read == messages,  # no update lost (speed is judged against the goal above)
        }
        harness.log(f"P4 {result}")
        harness.write_report("P4" + (f"_batch{batch}" if batch != 1 else "") + ("_smoke" if smoke else ""), result)
        return result
    finally:
        for proc in procs:
            proc.stop()
        fake.stop()
        connection.set_schema_to_public()
