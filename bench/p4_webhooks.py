"""P4: webhook ingestion. 3 status events (sent, delivered, read) per message, signed like Meta,
one per POST, are sent to the web server `make run` and production run (gunicorn + uvicorn
workers, config.asgi: the fast ingest path in front of Django); workers apply them to the
Delivery rows. Reported: events stored per second, POST latency p50/p99, how long events took
from arrival to being applied (p95), and the reference of the same run: the same client against
a trivial aiohttp endpoint (the ceiling of this box).

The client is wrk (Debian's package, `make bench` installs it) with a Lua script cycling through
pre-signed bodies (bench/p4_wrk.lua): cheap enough that the server, not the client, is measured.
The older client (the fake Graph API's Python pusher) is run once more for comparison, and for
ten events per POST. Runs: one and two web processes (ORM broker), two with Redis when a Redis
server answers on REDIS_URL / 127.0.0.1:6379.

Goal (quality.md): >= 2,000 events/s accepted with p99 < 100 ms; applied within p95 <= 5 s;
afterwards every delivery is `read` (no update lost while several workers apply at once).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

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
    """Smoke (CI): the fake's pusher, one and ten events per POST, checking no update is lost.
    Full: wrk against one and two web processes (ORM broker), two with Redis if there is one,
    then the fake's pusher (one and ten events per POST) for comparison.
    `ok` is the correctness part (no status update lost), `goal_met` the speed goal."""
    results: dict[str, object] = {}
    if smoke or not shutil.which("wrk"):
        if not smoke:
            harness.log("P4: wrk not found (make bench installs it); measuring with the fake's pusher only")
        for batch in (1, 10):
            results[f"batch{batch}"] = run_once(smoke=smoke, messages=messages, batch=batch)
    else:
        count = messages or 60_000
        results["wrk_2proc"] = run_wrk(count, web_workers=2)
        results["wrk_1proc"] = run_wrk(count, web_workers=1)
        results["wrk_2proc_ingest_only"] = run_wrk(count, web_workers=2, apply=False)
        results["wrk_1proc_ingest_only"] = run_wrk(count, web_workers=1, apply=False)
        redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
        if _redis_answers(redis_url):
            results["wrk_2proc_redis"] = run_wrk(count, web_workers=2, redis_url=redis_url)
        results["pusher_batch1"] = run_once(messages=min(count, 20_000), batch=1)
        results["pusher_batch10"] = run_once(messages=count, batch=10)
    results["ok"] = all(isinstance(r, dict) and r["ok"] for r in results.values())
    return results


def _redis_answers(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:  # noqa: BLE001 - no Redis here: that run is skipped
        return False


def _bodies(path: Path, wamids: list[str]) -> int:
    """Signed status notifications, all `sent` first, then `delivered`, then `read` (as they
    arrive in life), one per line for bench/p4_wrk.lua. Returns how many."""
    secret = harness.WA_SECRET.encode()
    count = 0
    with path.open("w") as out:
        for offset, status in enumerate(("sent", "delivered", "read")):
            for wamid in wamids:
                body = json.dumps(
                    {
                        "object": "whatsapp_business_account",
                        "entry": [
                            {
                                "id": "102290129340398",
                                "changes": [
                                    {
                                        "field": "messages",
                                        "value": {
                                            "messaging_product": "whatsapp",
                                            "metadata": {"display_phone_number": "4971100000", "phone_number_id": PNID},
                                            "statuses": [
                                                {
                                                    "id": wamid,
                                                    "status": status,
                                                    "timestamp": str(1_749_416_383 + offset),
                                                    "recipient_id": "49170" + wamid[-8:],
                                                }
                                            ],
                                        },
                                    }
                                ],
                            }
                        ],
                    },
                    separators=(",", ":"),
                )
                signature = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
                out.write(f"sha256={signature}\t{body}\n")
                count += 1
    return count


def _wrk(url: str, bodies: Path, *, connections: int = 32, cycle: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            "-d600s",
            "--timeout",
            "10s",
            "-s",
            str(harness.BASE_DIR / "bench" / "p4_wrk.lua"),
            url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={
            **os.environ,
            "P4_BODIES": str(bodies),
            "P4_PATH": "/" + url.split("/", 3)[3],
            "P4_CYCLE": "1" if cycle else "0",
        },
    )


def _wrk_figures(proc: subprocess.Popen[str]) -> dict[str, float]:
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    line = next((line for line in reversed(output.splitlines()) if line.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures: {output[-500:]}")
    return json.loads(line)


def _wrk_reference(bodies: Path) -> dict[str, float]:
    """The same client and bodies (cycled) against a trivial aiohttp endpoint for a few seconds;
    wrk's clock starts after its script has read the bodies."""
    sink_port = harness.free_port()
    sink = harness.start("p4-sink", [harness.PYTHON, "-m", "bench.p4_sink", str(sink_port)])
    try:
        harness.wait_http(f"http://127.0.0.1:{sink_port}/hook")
        proc = _wrk(f"http://127.0.0.1:{sink_port}/hook", bodies, cycle=True)
        time.sleep(8)
        figures = _wrk_figures(proc)
        rate = figures["requests"] / max(figures["duration_us"] / 1e6, 1e-9)
        return {"events_per_s": round(rate, 1), "p99_ms": figures["p99_ms"]}
    finally:
        sink.stop()


def _sending_broadcast(fake: harness.Fake) -> tuple[Any, Any, Any]:
    """A fresh tenant with a WhatsApp connection (number PNID) and a broadcast in `sending`,
    whose deliveries the scenario seeds itself. Leaves the connection in the tenant's schema."""
    from broadcasts.models import Broadcast
    from core.tenancy import connection

    tenant = harness.fresh_tenant("p4")
    connection.set_tenant(tenant)
    conn = harness.whatsapp_connection(fake, rate=1000, phone_number_id=PNID)
    broadcast = harness.approved_broadcast(harness.channel("P4", [conn.pk]), approve=False)
    Broadcast.objects.filter(pk=broadcast.pk).update(status="sending", fanout_done=True)
    return tenant, conn, broadcast


def _last_event_id() -> int:
    """The newest stored event's id (or the id sequence's position when none is stored)."""
    from core.tenancy import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE((SELECT max(id) FROM messengers_webhookevent), "
            "(SELECT last_value FROM messengers_webhookevent_id_seq))"
        )
        return int(cursor.fetchone()[0])


def _applied(*, wait: bool = True) -> tuple[Any, Any, int]:
    """Once every stored event is applied (unless wait=False): p95 and max seconds from arrival
    to applied (None when nothing was applied), and how many events are stored (in the current
    tenant's schema)."""
    from core.tenancy import connection
    from messengers.models import WebhookEvent

    if wait:
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
    return p95, worst, stored


def run_wrk(messages: int, *, web_workers: int, redis_url: str | None = None, apply: bool = True) -> dict[str, object]:
    """One wrk run. apply=False starts no workers: the ingest path's own capacity, with the
    whole machine to itself (the statuses are stored, not applied)."""
    from broadcasts.models import Delivery
    from core.tenancy import connection
    from messengers.models import WebhookEvent

    harness.drop_bench_tenants()
    label = (
        f"P4 wrk, {web_workers} web process{'es' if web_workers > 1 else ''}"
        + (", Redis" if redis_url else "")
        + ("" if apply else ", ingest only")
    )
    env = {"REDIS_URL": redis_url} if redis_url else {}
    port = harness.free_port()
    procs: list[harness.Proc] = []
    fake = harness.whatsapp_fake(name="fake-wa-p4w")  # the connection needs an API base; nothing is sent
    workdir = Path(tempfile.mkdtemp(prefix="p4-"))
    try:
        tenant, conn, broadcast = _sending_broadcast(fake)
        run_id = base64.b32encode(os.urandom(5)).decode()
        wamids = [f"wamid.P4{run_id}{i:08d}" for i in range(messages)]
        _seed_deliveries(tenant, broadcast.pk, conn.pk, wamids)
        warmup = workdir / "warmup.txt"
        _bodies(warmup, [f"wamid.W{run_id}{i:08d}" for i in range(2000)])
        bodies = workdir / "bodies.txt"
        total = _bodies(bodies, wamids)
        reference = _wrk_reference(bodies)
        harness.log(f"{label}: reference {reference}")
        web = harness.start_web(port, workers=web_workers, extra_env=env)
        procs.append(web)
        if apply:
            procs += [
                harness.start_workers(2, name="worker-p4", extra_env=env),
                harness.start_dispatcher(extra_env=env),
            ]
        url = f"http://127.0.0.1:{port}/webhooks/whatsapp/"
        # warm up (imports, pools, caches) on events that match no delivery
        warm = _wrk(url, warmup)
        harness.wait_for(lambda: WebhookEvent.objects.count() >= 6000, timeout=120, interval=0.2, what="warm-up stored")
        _wrk_figures(warm)
        harness.wait_for(  # they match no delivery: applying defers them
            lambda: not apply or not WebhookEvent.objects.filter(state="pending").exists(),
            timeout=120,
            interval=0.5,
            what="warm-up applied",
        )
        WebhookEvent.objects.all().delete()
        base = _last_event_id()
        proc = _wrk(url, bodies)
        started = None
        first = 0
        deadline = time.monotonic() + max(600, total / 100)
        while True:
            # 20 times a second: a count(*) would cost PostgreSQL up to 40 ms each on this table
            # (a third of a core taken from the server measured); the newest id is one index
            # probe. Every body is new, so ids are dense; the final count confirms it.
            stored = _last_event_id() - base
            if stored >= total:
                stored = WebhookEvent.objects.count()
            now = time.monotonic()
            if started is None and stored:
                started, first = now, stored
            if stored >= total or now > deadline or proc.poll() is not None:
                break
            time.sleep(0.05)
        finished = time.monotonic()
        figures = _wrk_figures(proc)
        p95, worst, stored = _applied(wait=apply)
        read = Delivery.objects.filter(broadcast=broadcast, status="read").count()
        rate = (stored - first) / max(finished - (started or finished), 1e-9)
        result = {
            "client": "wrk, 32 connections, one event per POST",
            "web_processes": web_workers,
            "broker": "redis" if redis_url else "orm",
            "messages": messages,
            "events": total,
            "events_per_s": round(rate, 1),
            "p50_ms": figures["p50_ms"],
            "p99_ms": figures["p99_ms"],
            "max_ms": figures["max_ms"],
            "non_2xx": figures["non_2xx"],
            "socket_errors": figures["socket_errors"],
            "applied_p95_s": round(float(p95), 3) if apply else None,
            "applied_max_s": round(float(worst), 3) if apply else None,
            "events_stored": stored,
            "deliveries_read": read,
            "reference_per_s": reference["events_per_s"],
            "reference_p99_ms": reference["p99_ms"],
            "ratio": round(rate / reference["events_per_s"], 3),
            "goal": ">= 2000 events/s, p99 < 100 ms; applied p95 <= 5 s; deliveries_read == messages",
            "goal_met": rate >= 2000 and figures["p99_ms"] < 100 and apply and float(p95) <= 5 and read == messages,
            "ok": stored == total and (read == messages or not apply),
        }
        harness.log(f"{label}: {result}")
        key = (
            "P4"
            + ("" if web_workers == 2 else f"_{web_workers}proc")
            + ("_redis" if redis_url else "")
            + ("" if apply else "_ingest_only")
        )
        harness.write_report(key, result)
        return result
    finally:
        for each in procs:
            each.stop()
        fake.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        connection.set_schema_to_public()


def run_once(*, smoke: bool = False, messages: int | None = None, batch: int = 1) -> dict[str, object]:
    from broadcasts.models import Delivery
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
        tenant, conn, broadcast = _sending_broadcast(fake)
        probe = fake.post("synthesize", {"count": 1, "phone_number_id": PNID, "statuses": []})
        # the warm-up below uses the next 300 ids; the measured messages follow them
        wamids = _wamid_sequence(str(probe["first"]), messages + 301)[301:]
        _seed_deliveries(tenant, broadcast.pk, conn.pk, wamids)
        web = harness.start_web(port)
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
        p95, worst, stored = _applied()
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
        key = "P4_pusher" + (f"_batch{batch}" if batch != 1 else "")
        harness.write_report(key + ("_smoke" if smoke else ""), result)
        return result
    finally:
        for proc in procs:
            proc.stop()
        fake.stop()
        connection.set_schema_to_public()
