"""Inbound messages of every kind, as the fake providers push them, through our webhook endpoints
and the apply loop: one InboundMessage each (replays create none), the contact's last inbound
time (the WhatsApp 24-hour window), blocks, unknown types kept and shown, and the hand-over to
settings.MESSENGER_INBOUND_HANDLERS (recording handlers here, not the keyword commands)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client, override_settings

from accounts import roles
from messengers.adapters.base import InboundMessage as InboundEvent
from messengers.models import Contact, InboundMessage, WebhookEvent
from tenants.models import Tenant
from tests.factories import make_user
from tests.fakes.common import RecordingServer
from tests.fakes.fixtures import TG_SECRET, WA_PHONE_NUMBER_ID
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio
from tests.fakes.whatsapp import FakeWhatsApp
from tests.helpers import enrol_totp
from tests.messengers.support import (
    apply_all,
    meta_json,
    post_whatsapp,
    replay,
    route_path,
    telegram_connection,
    twilio_connection,
    wa_envelope,
    wa_text,
    whatsapp_connection,
)

pytestmark = pytest.mark.usefixtures("tenant")

CALLS: list[tuple[str, str, str]] = []


def record(*, message: InboundMessage, event: InboundEvent) -> str | None:
    assert message.provider_message_id == event.provider_message_id[:200]
    CALLS.append(("record", message.kind, message.provider_message_id))
    return None


def claim_replies(*, message: InboundMessage, event: InboundEvent) -> str | None:
    CALLS.append(("claim", message.kind, message.provider_message_id))
    return "keyword" if message.kind in ("button", "interactive", "start") else None


def after(*, message: InboundMessage, event: InboundEvent) -> str | None:
    CALLS.append(("after", message.kind, message.provider_message_id))
    return None


def explode(*, message: InboundMessage, event: InboundEvent) -> str | None:
    if message.text == "boom":
        raise RuntimeError("handler bug")
    return None


HANDLERS = [f"{__name__}.record", f"{__name__}.claim_replies", f"{__name__}.after"]


@pytest.fixture(autouse=True)
def recording_handlers() -> Any:
    CALLS.clear()
    with override_settings(MESSENGER_INBOUND_HANDLERS=HANDLERS):
        yield CALLS


def replay_all(client: Client, sink: RecordingServer, count: int, path: str, *, host: str = "localhost") -> None:
    received = sink.wait_for(count, timeout=20)
    assert len(received) == count
    for _ in range(3):  # providers re-deliver
        for item in received:
            assert replay(client, item, path, host=host).status_code == 200


def check_handlers(messages: list[InboundMessage], claimed: set[str]) -> None:
    """Every message passed `record` once, then `claim_replies`; `after` only saw the unclaimed."""
    for message in messages:
        key = message.provider_message_id
        calls = [name for name, _, pid in CALLS if pid == key]
        expected = ["record", "claim"] + ([] if message.kind in claimed else ["after"])
        assert calls == expected, (message.kind, calls)
        assert message.handled_by == ("keyword" if message.kind in claimed else "")


# --------------------------------------------------------------------------------------------
# WhatsApp
# --------------------------------------------------------------------------------------------
def test_every_whatsapp_message_kind_becomes_one_inbound_message(
    client_public: Client, wa_fake: FakeWhatsApp, sink: RecordingServer
) -> None:
    conn = whatsapp_connection(api_base=wa_fake.url)
    person = "491701234567"
    pushes: list[dict[str, Any]] = [
        {"kind": "text", "text": "Ist die Straße frei? 🚧"},
        {"kind": "image", "text": "Schlagloch", "media_id": "1013859600285441"},
        {"kind": "location", "text": "Rathaus", "latitude": 48.7758, "longitude": 9.1829},
        {"kind": "contacts", "text": "Max Muster"},
        {"kind": "reaction", "text": "👍", "context_id": "wamid.OURS1"},
        {"kind": "button", "text": "Verstanden", "payload": "ACK:c42", "context_id": "wamid.TEMPLATE"},
        {"kind": "interactive", "text": "Ja", "payload": "rsvp:yes:c42", "context_id": "wamid.OURS2"},
        {"kind": "list_reply", "text": "Verkehr", "payload": "topic:traffic", "context_id": "wamid.OURS3"},
        {"kind": "unsupported"},
        {"kind": "raw", "message": {"type": "order", "order": {"catalog_id": "7", "product_items": []}}},
    ]
    ids = [wa_fake.inbound(sender=person, name="Erika Muster", **push)["id"] for push in pushes]
    assert wa_fake.wait_idle(20)
    replay_all(client_public, sink, len(pushes), "/webhooks/whatsapp/")
    assert WebhookEvent.objects.count() == len(pushes)
    stats = apply_all()
    assert stats["applied"] == len(pushes) and stats.get("failed", 0) == 0
    rows = {m.provider_message_id: m for m in InboundMessage.objects.filter(connection=conn)}
    assert set(rows) == set(ids)
    got = [(rows[i].kind, rows[i].text, rows[i].reply_to_provider_id) for i in ids]
    assert got == [
        ("text", "Ist die Straße frei? 🚧", ""),
        ("image", "Schlagloch", ""),
        ("location", "Rathaus", ""),
        ("contacts", "Max Muster", ""),
        ("reaction", "👍", "wamid.OURS1"),
        ("button", "Verstanden", "wamid.TEMPLATE"),
        ("interactive", "Ja", "wamid.OURS2"),
        ("interactive", "Verkehr", "wamid.OURS3"),
        ("unknown", "", ""),
        ("unknown", "", ""),
    ]
    assert rows[ids[1]].payload["id"] == "1013859600285441"
    assert rows[ids[2]].payload["latitude"] == 48.7758
    assert rows[ids[5]].payload["payload"] == "ACK:c42"
    assert rows[ids[7]].payload == {
        "type": "list_reply",
        "payload": "topic:traffic",
        "title": "Verkehr",
        "description": "",
    }
    assert rows[ids[9]].payload["type"] == "order"  # kept with its details
    contact = Contact.objects.get(connection=conn, address=person)
    assert contact.display_name == "Erika Muster"
    assert contact.last_inbound_at == max(m.sent_at for m in rows.values())
    assert {m.contact_id for m in rows.values()} == {contact.pk}
    check_handlers(list(rows.values()), claimed={"button", "interactive"})
    # a late re-delivery after everything was applied is still a no-op
    replay_all(client_public, sink, len(pushes), "/webhooks/whatsapp/")
    apply_all()
    assert InboundMessage.objects.count() == len(pushes)
    assert len(CALLS) == len(pushes) * 3 - 3  # three claimed ones skip `after`


def test_last_inbound_time_only_moves_forward(client_public: Client) -> None:
    conn = whatsapp_connection()
    newer = meta_json(
        wa_envelope((WA_PHONE_NUMBER_ID, {"messages": [wa_text("wamid.N", "4915", "neu", 1_749_420_000)]}))
    )
    older = meta_json(
        wa_envelope((WA_PHONE_NUMBER_ID, {"messages": [wa_text("wamid.O", "4915", "alt", 1_749_410_000)]}))
    )
    post_whatsapp(client_public, newer)
    apply_all()
    post_whatsapp(client_public, older)
    apply_all()
    contact = Contact.objects.get(connection=conn, address="4915")
    assert contact.last_inbound_at == datetime.fromtimestamp(1_749_420_000, UTC)
    assert InboundMessage.objects.filter(contact=contact).count() == 2


def test_a_failing_handler_keeps_the_event_for_a_retry_and_blocks_nothing_else(client_public: Client) -> None:
    conn = whatsapp_connection()
    body = meta_json(
        wa_envelope(
            (
                WA_PHONE_NUMBER_ID,
                {
                    "messages": [
                        wa_text("wamid.B", "4915", "boom", 1_749_420_000),
                        wa_text("wamid.OK", "4916", "ok", 1_749_420_001),
                    ]
                },
            )
        )
    )
    post_whatsapp(client_public, body)
    with override_settings(MESSENGER_INBOUND_HANDLERS=[f"{__name__}.explode"]):
        stats = apply_all()
    assert (stats["applied"], stats["failed"]) == (1, 1)
    failed = WebhookEvent.objects.get(dedupe_key="msg:wamid.B")
    assert failed.state == "failed" and "handler bug" in failed.error
    assert list(InboundMessage.objects.values_list("text", flat=True)) == ["ok"]
    # once the handler is fixed, the retry applies it
    apply_all()
    assert sorted(InboundMessage.objects.filter(connection=conn).values_list("text", flat=True)) == ["boom", "ok"]


def test_purge_deletes_only_applied_events_past_the_retention(client_public: Client) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from messengers import services

    whatsapp_connection()
    body = meta_json(
        wa_envelope(
            (
                WA_PHONE_NUMBER_ID,
                {
                    "messages": [
                        wa_text("wamid.OLD", "4915", "alt", 1_749_420_000),
                        wa_text("wamid.NEW", "4916", "neu", 1_749_420_001),
                        wa_text("wamid.BAD", "4917", "boom", 1_749_420_002),
                    ]
                },
            )
        )
    )
    post_whatsapp(client_public, body)
    with override_settings(MESSENGER_INBOUND_HANDLERS=[f"{__name__}.explode"]):
        apply_all()
    old = timezone.now() - timedelta(days=15)
    WebhookEvent.objects.filter(dedupe_key__in=["msg:wamid.OLD", "msg:wamid.BAD"]).update(received_at=old)

    assert services.webhook_events_purge() == 1  # the default retention is 14 days
    remaining = dict(WebhookEvent.objects.values_list("dedupe_key", "state"))
    assert remaining == {"msg:wamid.NEW": "applied", "msg:wamid.BAD": "failed"}  # a failed one waits for its retry
    # the messages themselves stay; only the raw provider events go
    assert InboundMessage.objects.filter(provider_message_id="wamid.OLD").exists()
    # with no retention, the applied one goes, and the failed one too: its retries ended a week after it came
    assert services.webhook_events_purge(older_than_days=0) == 2


@pytest.mark.usefixtures("tenant")
@pytest.mark.parametrize("state", ["deferred", "failed"])
def test_events_that_never_applied_are_purged_a_retention_after_their_retries_ended(state: str) -> None:
    """A status for a message whose id was erased with its person (GDPR) never finds its message;
    it carries the person's number, so it must not wait for ever."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from messengers import services

    conn = whatsapp_connection()
    now = timezone.now()
    limit = services.DEFERRED_RETRY_FOR + timedelta(days=settings.WEBHOOK_EVENT_RETENTION_DAYS)
    for key, age in (("late", limit + timedelta(minutes=1)), ("recent", limit - timedelta(minutes=1))):
        WebhookEvent.objects.create(
            connection=conn, dedupe_key=key, kind="status", state=state, received_at=now,
            payload={"type": "status", "provider_message_id": "", "recipient": "4915123456789"},
        )  # fmt: skip
        WebhookEvent.objects.filter(dedupe_key=key).update(received_at=now - age)
    WebhookEvent.objects.create(connection=conn, dedupe_key="waiting", kind="status", state="pending", payload={})
    WebhookEvent.objects.filter(dedupe_key="waiting").update(received_at=now - limit * 2)
    assert services.webhook_events_purge() == 1
    assert set(WebhookEvent.objects.values_list("dedupe_key", flat=True)) == {"recent", "waiting"}


# --------------------------------------------------------------------------------------------
# Telegram
# --------------------------------------------------------------------------------------------
def test_telegram_updates_start_payload_taps_and_block(
    client_public: Client, tg_fake: FakeTelegram, sink: RecordingServer
) -> None:
    from messengers import selectors
    from messengers.adapters import get_adapter

    bot = telegram_connection(secret=TG_SECRET, api_base=tg_fake.url)
    assert get_adapter(selectors.connection_config(bot)).register_webhook(sink.url + "/tg").ok
    chat = 5550001
    tg_fake.inbound(chat_id=chat, kind="start", payload="t_8f3KQz_tenant7", first_name="Erika")
    tg_fake.inbound(chat_id=chat, kind="text", text="Wann fährt der Bus?")
    tg_fake.inbound(chat_id=chat, kind="photo", text="Foto vom Schaden")
    tg_fake.inbound(chat_id=chat, kind="callback", payload="rsvp:yes")
    dice = {
        "message_id": 99,
        "from": {"id": chat, "is_bot": False, "first_name": "Erika"},
        "chat": {"id": chat, "first_name": "Erika", "type": "private"},
        "date": 1_737_277_000,
        "dice": {"emoji": "🎲", "value": 4},
    }
    tg_fake.inbound(chat_id=chat, kind="raw", update={"message": dice})  # a message type we do not know
    tg_fake.inbound(chat_id=chat, kind="block")
    assert tg_fake.wait_idle(20)
    replay_all(client_public, sink, 6, route_path(bot))
    stats = apply_all()
    assert stats["applied"] == 6
    rows = list(InboundMessage.objects.filter(connection=bot))
    by_kind = {m.kind: m for m in rows}
    assert sorted((m.kind, m.text) for m in rows) == [
        ("block", ""),
        ("button", "rsvp:yes"),
        ("image", "Foto vom Schaden"),
        ("start", "t_8f3KQz_tenant7"),
        ("text", "Wann fährt der Bus?"),
        ("unknown", ""),
    ]
    assert by_kind["button"].payload["payload"] == "rsvp:yes"
    assert by_kind["unknown"].payload["message"]["dice"] == {"emoji": "🎲", "value": 4}
    contact = Contact.objects.get(connection=bot, address=str(chat))
    assert contact.status == Contact.Status.BLOCKED
    # the block is not a message from the person: the window time is the last real message's
    assert contact.last_inbound_at == max(m.sent_at for m in rows if m.kind not in ("block", "unknown"))
    check_handlers(rows, claimed={"button", "start"})
    # unblocking (the person pressed Start again) makes the contact reachable again
    sink.clear()
    tg_fake.inbound(chat_id=chat, kind="unblock")
    assert tg_fake.wait_idle(20)
    replay_all(client_public, sink, 1, route_path(bot))
    apply_all()
    contact.refresh_from_db()
    assert contact.status == Contact.Status.ACTIVE


# --------------------------------------------------------------------------------------------
# Twilio SMS
# --------------------------------------------------------------------------------------------
def test_sms_text_media_and_stop(client_public: Client, tw_fake: FakeTwilio, sink: RecordingServer) -> None:
    conn = twilio_connection(api_base=tw_fake.url)
    path = route_path(conn)
    tw_fake.configure(inbound_url=sink.url + path)
    tw_fake.inbound(sender="+491701112233", text="Hallo")
    tw_fake.inbound(sender="+491701112233", text="", kind="media", media_urls=["https://example.org/a.jpg"])
    tw_fake.inbound(sender="+491701112233", text="STOP")
    assert tw_fake.wait_idle(20)
    replay_all(client_public, sink, 3, path, host=f"{sink.host}:{sink.port}")
    apply_all()
    rows = {m.kind: m for m in InboundMessage.objects.filter(connection=conn)}
    assert sorted((m.kind, m.text) for m in rows.values()) == [("block", "STOP"), ("image", ""), ("text", "Hallo")]
    assert rows["image"].payload["media"][0]["url"] == "https://example.org/a.jpg"
    assert Contact.objects.get(connection=conn).status == Contact.Status.BLOCKED


# --------------------------------------------------------------------------------------------
# Shown in the admin
# --------------------------------------------------------------------------------------------
def test_unknown_messages_are_listed_in_the_admin(client_public: Client, client_a: Client, tenant: Tenant) -> None:
    whatsapp_connection()
    odd = {"from": "4917", "id": "wamid.ODD", "timestamp": "1749420000", "type": "order", "order": {"x": 1}}
    post_whatsapp(client_public, meta_json(wa_envelope((WA_PHONE_NUMBER_ID, {"messages": [odd]}))))
    apply_all()
    message = InboundMessage.objects.get(kind="unknown")
    editor = make_user(roles.ADMIN, username="inbox_admin")
    enrol_totp(editor)
    client_a.force_login(editor)
    listing = client_a.get("/admin/messengers/inboundmessage/")
    assert listing.status_code == 200
    assert "[unknown]" in listing.content.decode()
    detail = client_a.get(f"/admin/messengers/inboundmessage/{message.pk}/change/")
    assert detail.status_code == 200
    assert "order" in detail.content.decode()
