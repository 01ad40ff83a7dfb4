"""Status webhooks, replayed and reordered: every event posted 3× in many shuffled orders, applied
in batches of random size between the posts, ends in exactly the same rows (status, error code,
timestamps), never moves `read` back, and keeps broadcast counters exact. Statuses that arrive
before their send was recorded wait (deferred) and are applied once it is."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from broadcasts.models import Broadcast, Delivery
from broadcasts.selectors import broadcast_progress
from messengers import services
from messengers.adapters import get_adapter
from messengers.adapters.base import Adapter, OutgoingMessage, SendResult
from messengers.models import Connection, Contact, OutboundMessage, WebhookEvent
from messengers.status import RANK
from tenants.models import Tenant
from tests.broadcasts.factories import make_subscribers
from tests.channels.factories import make_channel
from tests.fakes.common import RecordingServer
from tests.fakes.fixtures import WA_PHONE_NUMBER_ID
from tests.fakes.whatsapp import FakeWhatsApp
from tests.messengers.support import (
    apply_all,
    meta_json,
    post_whatsapp,
    replay,
    wa_envelope,
    wa_status,
    whatsapp_connection,
)

pytestmark = pytest.mark.usefixtures("tenant")

T0 = 1_749_416_000


def at(offset: int) -> datetime:
    return datetime.fromtimestamp(T0 + offset, UTC)


@dataclass(frozen=True)
class Ev:
    status: str
    offset: int
    code: int | None = None


# The script: what the provider says about each message (offsets are seconds after T0).
SCRIPT: dict[str, list[Ev]] = {
    "read": [Ev("sent", 1), Ev("delivered", 5), Ev("read", 9)],
    "delivered": [Ev("sent", 1), Ev("delivered", 6)],
    "read-only": [Ev("read", 7)],  # Meta may skip `delivered` when both happen at once
    "sent": [Ev("sent", 2)],
    "failed": [Ev("sent", 1), Ev("failed", 3, 131026)],  # not on WhatsApp: the person is unreachable
    "failed-then-delivered": [Ev("failed", 3, 131047), Ev("delivered", 8)],  # multi-device
    "read-then-failed": [Ev("sent", 1), Ev("read", 4), Ev("failed", 5, 131000)],
    "declined": [Ev("failed", 2, 131049)],  # Meta chose not to deliver: a plain failure
}

# (status, error code, delivered_at, read_at)
EXPECTED: dict[str, tuple[str, str, datetime | None, datetime | None]] = {
    "read": ("read", "", at(5), at(9)),
    "delivered": ("delivered", "", at(6), None),
    "read-only": ("read", "", at(7), at(7)),
    "sent": ("sent", "", None, None),
    "failed": ("failed", "131026", None, None),
    "failed-then-delivered": ("delivered", "131047", at(8), None),
    "read-then-failed": ("read", "131000", at(4), at(4)),
    "declined": ("failed", "131049", None, None),
}
UNREACHABLE = {"failed"}  # whose contact ends up blocked


def bodies(prefix: str, rng: random.Random) -> list[bytes]:
    """One signed-body payload per event, sometimes several events of different messages in one
    POST (Meta batches); every body three times, all shuffled."""
    items = [(f"wamid.{prefix}{name}", ev) for name, events in SCRIPT.items() for ev in events]
    rng.shuffle(items)
    out: list[bytes] = []
    while items:
        size = rng.choice([1, 1, 1, 2, 3])
        chunk, items = items[:size], items[size:]
        statuses = [wa_status(wamid, ev.status, T0 + ev.offset, code=ev.code) for wamid, ev in chunk]
        out.append(meta_json(wa_envelope((WA_PHONE_NUMBER_ID, {"statuses": statuses}))))
    out = out * 3
    rng.shuffle(out)
    return out


def play(client: Client, prefix: str, seed: int, rows: Any) -> None:
    """Post everything in a shuffled order, applying batches of random size in between, and
    check after each apply that no row moved backwards."""
    rng = random.Random(seed)
    seen: dict[int, int] = {}

    def check_monotonic() -> None:
        for pk, status in rows().values_list("pk", "status"):
            assert RANK[status] >= seen.get(pk, 0), f"seed {seed}: row {pk} went back to {status}"
            seen[pk] = RANK[status]

    for body in bodies(prefix, rng):
        assert post_whatsapp(client, body).status_code == 200
        if rng.random() < 0.4:
            services.webhook_events_apply(batch_size=rng.randint(1, 6))
            check_monotonic()
    apply_all()
    check_monotonic()
    assert not WebhookEvent.objects.exclude(state=WebhookEvent.State.APPLIED).exists()


def contact_for(conn: Connection, name: str) -> Contact:
    return services.contact_get_or_create(connection=conn, address=f"+49170{abs(hash(name)) % 10**7:07d}")


# --------------------------------------------------------------------------------------------
# Single messages
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(12))
def test_single_messages_end_in_the_same_state_whatever_the_order(client_public: Client, seed: int) -> None:
    conn = whatsapp_connection()
    rows = {}
    for name in SCRIPT:
        rows[name] = OutboundMessage.objects.create(
            connection=conn,
            contact=contact_for(conn, name),
            to="+491701",
            text=name,
            status=OutboundMessage.Status.SENT,
            provider_message_id=f"wamid.o-{name}",
            sent_at=at(0),
        )
    play(client_public, "o-", seed, lambda: OutboundMessage.objects.filter(connection=conn))
    for name, row in rows.items():
        row.refresh_from_db()
        assert (row.status, row.error_code, row.delivered_at, row.read_at) == EXPECTED[name], (seed, name)
        assert row.contact is not None
        contact = Contact.objects.get(pk=row.contact.pk)
        assert (contact.status == Contact.Status.BLOCKED) == (name in UNREACHABLE), (seed, name, contact.status)


# --------------------------------------------------------------------------------------------
# Broadcast deliveries (the other status sink) and the counters derived from them
# --------------------------------------------------------------------------------------------
def deliveries_for(conn: Connection) -> tuple[Broadcast, dict[str, Delivery]]:
    channel = make_channel("Status", [], connections=[conn])
    people = make_subscribers(len(SCRIPT), [channel], conn, prefix="+4915577")
    broadcast = Broadcast.objects.create(title="Statuses", status=Broadcast.Status.SENT)
    rows = {}
    for name, person in zip(SCRIPT, people, strict=True):
        rows[name] = Delivery.objects.create(
            broadcast=broadcast,
            subscriber=person,
            contact=Contact.objects.get(subscriber=person),
            connection=conn,
            language="de",
            status=Delivery.Status.SENT,
            provider_message_id=f"wamid.d-{name}",
            next_attempt_at=timezone.now(),
            sent_at=at(0),
        )
    return broadcast, rows


def delivery_state(row: Delivery) -> tuple[str, str, datetime | None, datetime | None]:
    row.refresh_from_db()
    return (row.status, row.error_code, row.delivered_at, row.read_at)


@pytest.mark.parametrize("seed", range(12))
def test_deliveries_and_progress_end_in_the_same_state_whatever_the_order(client_public: Client, seed: int) -> None:
    conn = whatsapp_connection()
    broadcast, rows = deliveries_for(conn)
    play(client_public, "d-", seed, lambda: Delivery.objects.filter(broadcast=broadcast))
    finals = {name: delivery_state(row) for name, row in rows.items()}
    # statuses and timestamps exactly as scripted
    assert {n: (s, d, r) for n, (s, _, d, r) in finals.items()} == {
        n: (s, d, r) for n, (s, _, d, r) in EXPECTED.items()
    }, seed
    assert rows["failed"].error_code == "131026" and rows["failed"].error_kind == "not_on_messenger"
    assert rows["declined"].error_code == "131049" and rows["declined"].error_kind == "bad_request"
    blocked = set(Contact.objects.filter(status=Contact.Status.BLOCKED).values_list("pk", flat=True))
    assert blocked == {rows["failed"].contact_id}, seed
    progress = broadcast_progress(broadcast)
    assert (progress.total, progress.sent, progress.delivered, progress.read, progress.failed) == (8, 1, 2, 3, 2)
    assert progress.failures_by_reason == {"not_on_messenger": 1, "bad_request": 1}


def test_a_failure_and_a_late_delivery_give_the_same_delivery_row_in_one_batch_or_two(client_public: Client) -> None:
    conn = whatsapp_connection()
    _, rows = deliveries_for(conn)
    failed = meta_json(
        wa_envelope(
            (
                WA_PHONE_NUMBER_ID,
                {"statuses": [wa_status("wamid.d-failed-then-delivered", "failed", T0 + 3, code=131047)]},
            )
        )
    )
    late = meta_json(
        wa_envelope(
            (WA_PHONE_NUMBER_ID, {"statuses": [wa_status("wamid.d-failed-then-delivered", "delivered", T0 + 8)]})
        )
    )
    outcomes = []
    for together in (False, True):
        with transaction.atomic():
            post_whatsapp(client_public, failed)
            if not together:
                services.webhook_events_apply()
            post_whatsapp(client_public, late)
            services.webhook_events_apply()
            outcomes.append(delivery_state(rows["failed-then-delivered"])[:2])
            transaction.set_rollback(True)
    assert outcomes[0] == ("delivered", "131047")  # two batches
    assert outcomes[1] == outcomes[0]  # one batch gives the same row


def test_replaying_everything_again_changes_nothing(client_public: Client) -> None:
    conn = whatsapp_connection()
    broadcast, rows = deliveries_for(conn)
    play(client_public, "d-", 1, lambda: Delivery.objects.filter(broadcast=broadcast))
    before = {name: delivery_state(row) for name, row in rows.items()}
    stored = WebhookEvent.objects.count()
    play(client_public, "d-", 2, lambda: Delivery.objects.filter(broadcast=broadcast))
    assert WebhookEvent.objects.count() == stored  # every replay was a no-op at the door
    assert {name: delivery_state(row) for name, row in rows.items()} == before


# --------------------------------------------------------------------------------------------
# Status before send
# --------------------------------------------------------------------------------------------
def test_a_status_for_an_unknown_message_waits_and_is_applied_once_the_id_is_recorded(
    client_public: Client,
) -> None:
    conn = whatsapp_connection()
    body = meta_json(
        wa_envelope(
            (
                WA_PHONE_NUMBER_ID,
                {"statuses": [wa_status("wamid.early", "delivered", T0 + 5), wa_status("wamid.early", "read", T0 + 9)]},
            )
        )
    )
    assert post_whatsapp(client_public, body).status_code == 200
    assert services.webhook_events_apply()["deferred"] == 2
    events = WebhookEvent.objects.filter(connection=conn)
    assert set(events.values_list("state", "attempts")) == {("deferred", 1)}
    assert all(e.applied_at is not None and e.applied_at > timezone.now() for e in events)  # retry later
    # not due yet: the next run leaves them alone; nothing is dropped
    assert services.webhook_events_apply()["picked"] == 0
    # a retry before the id exists defers again (with a longer pause)
    assert services.webhook_events_retry_deferred(connection_id=conn.pk) == 2
    services.webhook_events_apply()
    assert set(events.values_list("state", "attempts")) == {("deferred", 2)}
    # the send result is recorded; the retry makes them due at once, however long the pause was
    WebhookEvent.objects.filter(connection=conn).update(attempts=9, applied_at=timezone.now() + timedelta(hours=1))
    message = OutboundMessage.objects.create(
        connection=conn, to="+491701", status=OutboundMessage.Status.SENT, provider_message_id="wamid.early"
    )
    services.webhook_events_retry_deferred(connection_id=conn.pk)
    # the retry queues an apply run; with committed data (tests/messengers/ingest) the test
    # settings run it at once, so the run here may find nothing left to do
    services.webhook_events_apply()
    message.refresh_from_db()
    assert (message.status, message.delivered_at, message.read_at) == ("read", at(5), at(9))
    assert set(events.values_list("state", flat=True)) == {"applied"}


def test_old_deferred_statuses_are_kept_not_dropped(client_public: Client) -> None:
    conn = whatsapp_connection()
    body = meta_json(wa_envelope((WA_PHONE_NUMBER_ID, {"statuses": [wa_status("wamid.lost", "read", T0)]})))
    post_whatsapp(client_public, body)
    services.webhook_events_apply()
    WebhookEvent.objects.update(received_at=timezone.now() - timedelta(days=8), applied_at=timezone.now())
    assert services.webhook_events_apply()["picked"] == 0  # past the retry period: no more retries …
    event = WebhookEvent.objects.get(connection=conn)
    assert event.state == WebhookEvent.State.DEFERRED  # … but still there, visible in the admin
    assert "no message" in event.error


def test_a_status_never_applies_to_another_connections_message(client_public: Client) -> None:
    conn = whatsapp_connection()
    other = whatsapp_connection(pnid="777000777", name="Andere")
    message = OutboundMessage.objects.create(
        connection=other, to="+491701", status=OutboundMessage.Status.SENT, provider_message_id="wamid.same"
    )
    body = meta_json(wa_envelope((WA_PHONE_NUMBER_ID, {"statuses": [wa_status("wamid.same", "read", T0)]})))
    post_whatsapp(client_public, body)
    apply_all()
    message.refresh_from_db()
    assert message.status == "sent"
    assert WebhookEvent.objects.get(connection=conn).state == "deferred"


class StatusesFirst(Adapter):
    """Wraps the real adapter: after the provider accepted the send, its status webhooks reach
    our endpoint (and a worker tries to apply them) before message_send records the id."""

    def __init__(self, inner: Adapter, deliver: Any) -> None:
        super().__init__(inner.config)
        self.inner = inner
        self.deliver = deliver

    def send(self, message: OutgoingMessage) -> SendResult:
        result = self.inner.send(message)
        self.deliver(result)
        return result

    def verify_webhook(self, request: Any) -> bool:
        return self.inner.verify_webhook(request)

    def parse_webhook(self, request: Any) -> list[Any]:
        return self.inner.parse_webhook(request)

    def check_credentials(self) -> Any:
        return self.inner.check_credentials()


def test_statuses_pushed_before_message_send_records_the_id(
    client_public: Client,
    wa_fake: FakeWhatsApp,
    sink: RecordingServer,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
    tenant: Tenant,
) -> None:
    conn = whatsapp_connection(api_base=wa_fake.url)
    wa_fake.configure(speed=0)
    wa_fake.open_window("491709998877")
    seen: dict[str, Any] = {}

    def deliver(result: SendResult) -> None:
        received = sink.wait_for(3, timeout=20)
        assert len(received) == 3
        for item in received:
            assert replay(client_public, item, "/webhooks/whatsapp/").status_code == 200
        seen["stats"] = services.webhook_events_apply()
        seen["unrecorded"] = not OutboundMessage.objects.filter(provider_message_id=result.provider_message_id).exists()

    monkeypatch.setattr(services.messages, "get_adapter", lambda config: StatusesFirst(get_adapter(config), deliver))
    contact = services.contact_get_or_create(connection=conn, address="+491709998877")
    outbound = services.message_queue(connection=conn, to=contact.address, text="Hallo", contact=contact)
    with django_capture_on_commit_callbacks(execute=True):
        services.message_send(outbound_id=outbound.pk)
    assert seen["unrecorded"] and seen["stats"]["deferred"] == 3
    outbound.refresh_from_db()
    assert outbound.provider_message_id.startswith("wamid.")
    assert outbound.status == "read"
    assert outbound.delivered_at is not None and outbound.read_at is not None
    assert set(WebhookEvent.objects.values_list("state", flat=True)) == {"applied"}


def broken_sink(*, connection_id: int, events: list[Any]) -> set[str]:
    raise RuntimeError("sink bug")


def test_a_failing_status_sink_holds_up_nothing_else(client_public: Client) -> None:
    from django.test import override_settings

    conn = whatsapp_connection()
    message = OutboundMessage.objects.create(
        connection=conn, to="+491701", status=OutboundMessage.Status.SENT, provider_message_id="wamid.S"
    )
    body = meta_json(
        wa_envelope(
            (
                WA_PHONE_NUMBER_ID,
                {
                    "statuses": [wa_status("wamid.S", "read", T0)],
                    "messages": [
                        {"from": "4915", "id": "wamid.IN", "timestamp": str(T0), "type": "text", "text": {"body": "x"}}
                    ],
                },
            )
        )
    )
    post_whatsapp(client_public, body)
    sinks = [f"{__name__}.broken_sink", "messengers.services.outbound_apply_statuses"]
    with override_settings(MESSENGER_STATUS_SINKS=sinks, MESSENGER_INBOUND_HANDLERS=[]):
        stats = services.webhook_events_apply()
    assert (stats["applied"], stats["failed"]) == (1, 1)
    status = WebhookEvent.objects.get(kind="status")
    assert status.state == "failed" and "sink bug" in status.error
    message.refresh_from_db()
    assert message.status == "sent"
    with override_settings(MESSENGER_INBOUND_HANDLERS=[]):
        apply_all()  # fixed: the retry applies it
    message.refresh_from_db()
    assert message.status == "read"
