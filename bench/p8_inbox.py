"""P8: the inbox under load. While a broadcast is sending on the same WhatsApp number, the fake
Graph API posts citizens' questions (signed, like Meta) to our gunicorn server at 50 messages
per second; workers file them into conversations. An agent's page polls the inbox's "anything
new" endpoint every 100 ms, as the inbox page does every few seconds. Reported: the time from
the fake's POST to the conversation showing up in that endpoint (p50 / p95 / max), and the
inbox list's server time and query count with 20,000 conversations (in-process, after a warm-up).

Goal (quality.md P8): visible within p95 <= 3 s; the list with 20,000 conversations <= 300 ms
with a constant number of queries. `ok` (what a smoke run checks) is the correctness part:
every question became exactly one conversation and was seen by the poll.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from bench import harness

PNID = "106540352242925"
RATE = 50  # questions per second
LIST_GOAL_MS = 300.0


def _session_cookie(user: Any) -> str:
    """A signed-in session of `user` in the current tenant's schema (the web server reads it)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return str(session.session_key)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _visible_latencies(*, fake: Any, port: int, host: str, cookie: str, count: int) -> dict[str, Any]:
    """Push `count` questions at RATE/s through the fake; poll the changes endpoint; return when
    each sender's conversation was first seen, relative to the fake's POST."""
    import requests

    from core.tenancy import connection
    from inbox.models import Conversation

    pushed: dict[str, float] = {}
    seen: dict[int, float] = {}
    stop = threading.Event()
    url = f"http://127.0.0.1:{port}/admin/inbox/changes.json"
    from django.conf import settings

    headers = {"Host": host, "Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"}
    errors: list[str] = []

    def poll() -> None:
        since = ""
        with requests.Session() as http:
            while not stop.is_set():
                try:
                    answer = http.get(
                        url, params={"since": since} if since else {}, headers=headers, timeout=10,
                        allow_redirects=False,
                    )  # fmt: skip
                    if answer.status_code != 200:
                        errors.append(f"poll {answer.status_code}")
                    else:
                        data = answer.json()
                        now = time.time()
                        for pk in data["changed"]:
                            seen.setdefault(pk, now)
                        since = data["cursor"]
                except requests.RequestException as exc:
                    errors.append(f"poll {exc.__class__.__name__}")
                time.sleep(0.1)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    # the first poll only learns the server's clock
    time.sleep(0.5)
    started = time.monotonic()
    for i in range(count):
        due = started + i / RATE
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        sender = f"4916{i:09d}"
        pushed[sender] = time.time()
        fake.post(
            "inbound",
            {"sender": sender, "text": f"Gilt der Feinstaubalarm morgen noch? ({i})", "name": f"Person {i}",
             "phone_number_id": PNID},
        )  # fmt: skip
    push_seconds = time.monotonic() - started

    def everyone_seen() -> bool:
        return Conversation.objects.filter(pk__in=list(seen)).count() >= count

    try:
        harness.wait_for(everyone_seen, timeout=60 + count / 10, interval=0.5, what="every question visible")
    except TimeoutError:
        from messengers.models import InboundMessage, WebhookEvent

        states = list(WebhookEvent.objects.values_list("state", flat=True))
        harness.log(
            f"P8 stuck: seen {len(seen)}, conversations {Conversation.objects.count()}, inbound "
            f"{InboundMessage.objects.count()}, webhook events {states[:5]} ({len(states)}), poll errors {errors[:5]}"
        )
        raise
    finally:
        stop.set()
        poller.join(timeout=15)
    addresses = dict(Conversation.objects.values_list("pk", "contact__address"))
    latencies = [
        seen[pk] - pushed[addresses[pk].lstrip("+")] for pk in seen if addresses.get(pk, "").lstrip("+") in pushed
    ]
    conversations = Conversation.objects.count()
    connection.set_schema_to_public()
    return {
        "questions": count,
        "pushed_per_s": round(count / push_seconds, 1),
        "conversations": conversations,
        "visible_p50_s": round(statistics.median(latencies), 3),
        "visible_p95_s": round(_percentile(latencies, 0.95), 3),
        "visible_max_s": round(max(latencies), 3),
        "poll_errors": len(errors),
        "ok": conversations == count and len(latencies) == count,
    }


def _bulk_conversations(count: int, connection_id: int) -> None:
    """`count` open conversations with one message each (COPY-speed bulk inserts)."""
    from django.utils import timezone

    from inbox.models import Conversation, Entry
    from messengers.models import Contact

    now = timezone.now()
    contacts = Contact.objects.bulk_create(
        [
            Contact(connection_id=connection_id, address=f"+4915{i:010d}", display_name=f"Liste {i}")
            for i in range(count)
        ],
        batch_size=5000,
    )
    conversations = Conversation.objects.bulk_create(
        [
            Conversation(
                contact=contact, connection_id=connection_id, last_activity_at=now, changed_at=now,
                waiting_since=now, unread_count=1, preview=f"Frage {i}",
            )
            for i, contact in enumerate(contacts)
        ],
        batch_size=5000,
    )  # fmt: skip
    Entry.objects.bulk_create(
        [Entry(conversation=c, kind="inbound", text=f"Frage {i} zur Baustelle") for i, c in enumerate(conversations)],
        batch_size=5000,
    )


def _list_timing(host: str, user: Any, repeats: int) -> dict[str, Any]:
    from django.db import connection as db
    from django.test import Client, override_settings
    from django.test.utils import CaptureQueriesContext

    from core.tenancy import connection

    client = Client(HTTP_HOST=host, HTTP_ACCEPT_LANGUAGE="de")
    client.force_login(user)
    connection.set_schema_to_public()
    times: list[float] = []
    with override_settings(ALLOWED_HOSTS=["*"]):
        assert client.get("/admin/inbox/").status_code == 200  # warm-up
        connection.set_schema_to_public()
        for _ in range(repeats):
            started = time.perf_counter()
            response = client.get("/admin/inbox/")
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
            connection.set_schema_to_public()
        with CaptureQueriesContext(db) as queries:
            client.get("/admin/inbox/")
        connection.set_schema_to_public()
    return {
        "list_ms": round(statistics.median(times), 1),
        "list_p95_ms": round(_percentile(times, 0.95), 1),
        "list_queries": len(queries.captured_queries),
    }


def run(*, smoke: bool = False) -> dict[str, Any]:
    from accounts import roles
    from accounts.services import user_create
    from core.tenancy import connection
    from inbox.models import Conversation

    questions = 50 if smoke else 1000  # 1 s or 20 s at 50/s
    recipients = 100 if smoke else 5000
    listed = 200 if smoke else 20_000
    harness.drop_bench_tenants()
    port = harness.free_port()
    procs: list[harness.Proc] = []
    fake = harness.whatsapp_fake(
        "--phone-number-id", PNID, "--webhook-url", f"http://localhost:{port}/webhooks/whatsapp/", name="fake-wa-p8"
    )
    try:
        tenant = harness.fresh_tenant("p8")
        connection.set_tenant(tenant)
        host = tenant.domains.get(is_primary=True).domain
        conn = harness.whatsapp_connection(fake, rate=80, phone_number_id=PNID)
        ch = harness.channel("P8", [conn.pk], requires_approval=True)
        harness.bulk_subscribers(tenant, recipients, [ch.pk], conn.pk, recent_inbound=True, prefix="49171")
        agent = user_create(username="agent", email="agent@p8.example", role_names=[roles.INBOX_AGENT])
        cookie = _session_cookie(agent)
        procs += [harness.start_web(port, workers=3, threads=4), harness.start_workers(2, name="worker-p8")]
        procs.append(harness.start_dispatcher())
        harness.wait_http(f"http://127.0.0.1:{port}/healthz", headers={"Host": host})
        connection.set_tenant(tenant)
        broadcast = harness.approved_broadcast(ch, text="Feinstaubalarm ab morgen 6 Uhr.")
        harness.log(f"P8: broadcast {broadcast.pk} to {recipients} sending; pushing {questions} questions at {RATE}/s")
        visible = _visible_latencies(fake=fake, port=port, host=host, cookie=cookie, count=questions)
        connection.set_tenant(tenant)
        from broadcasts.models import Broadcast

        broadcast_status = Broadcast.objects.get(pk=broadcast.pk).status
        harness.log(f"P8 visible: {visible}; broadcast is {broadcast_status}")
        for proc in procs:
            proc.stop()
        procs.clear()
        connection.set_tenant(tenant)
        few_queries = _list_timing(host, agent, 1)["list_queries"]  # with only the questions
        connection.set_tenant(tenant)
        _bulk_conversations(listed - Conversation.objects.count(), conn.pk)
        total = Conversation.objects.count()
        connection.set_tenant(tenant)
        listing = _list_timing(host, agent, 3 if smoke else 10)
        result = {
            **visible,
            "broadcast_recipients": recipients,
            "broadcast_status_after": broadcast_status,
            "list_conversations": total,
            **listing,
            "list_queries_with_questions_only": few_queries,
            "list_queries_constant": listing["list_queries"] == few_queries,
            "goal": "visible p95 <= 3 s at 50 questions/s during a send; list of 20,000 <= 300 ms, constant queries",
        }
        result["ok"] = bool(visible["ok"])
        harness.log(f"P8 {result}")
        harness.write_report("P8" + ("_smoke" if smoke else ""), result)
        return result
    finally:
        for proc in procs:
            proc.stop()
        fake.stop()
        connection.set_schema_to_public()
