"""Media in the inbox thread: what each kind looks like, the media view that fetches the file from
the (fake) provider through the adapter, its headers for hostile types, failures shown in words,
permissions, tenant isolation, malformed payloads and the thread's query count."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts import roles
from inbox.models import Entry
from messengers.adapters import get_adapter
from messengers.adapters.base import InboundMessage as InboundEvent
from messengers.adapters.base import WebhookRequest
from messengers.models import Connection
from messengers.selectors import connection_config
from messengers.services import webhook_events_store
from tenants.models import Tenant
from tests.factories import make_user
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio
from tests.fakes.whatsapp import FakeWhatsApp
from tests.helpers import enrol_totp, query_count
from tests.messengers.support import apply_all, telegram_connection, twilio_connection, whatsapp_connection

pytestmark = pytest.mark.usefixtures("tenant")
INBOX = "/admin/inbox/"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(range(256)) * 4
OGG = b"OggS" + bytes(1500)
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(500)
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
HTML = b"<html><script>alert(document.cookie)</script></html>"


@pytest.fixture
def agent(client_a: Client) -> Client:
    client_a.force_login(make_user(roles.INBOX_AGENT, username="agent_media"))
    return client_a


@pytest.fixture
def wa_conn(wa_fake: FakeWhatsApp) -> Connection:
    return whatsapp_connection(api_base=wa_fake.url)


def file_events(connection: Connection, body: bytes) -> Entry:
    """Parse the fake's webhook body with the connection's adapter, store and apply it like the
    webhook view and the worker do; the thread entry it became."""
    events = get_adapter(connection_config(connection)).parse_webhook(
        WebhookRequest(method="POST", url="", headers={}, body=body)
    )
    webhook_events_store(connection=connection, events=events)
    apply_all()
    assert len(events) == 1
    return Entry.objects.select_related("inbound").get(
        inbound__connection=connection, inbound__provider_message_id=events[0].provider_message_id
    )


def from_whatsapp(fake: FakeWhatsApp, connection: Connection, **inbound: Any) -> Entry:
    return file_events(connection, fake.inbound(**inbound)["body"].encode())


def stored(connection: Connection, kind: str, payload: Any, text: str = "") -> Entry:
    """An inbound message whose payload no adapter wrote (old rows, other versions, hostile data)."""
    event = InboundEvent(
        provider_message_id=f"odd-{uuid.uuid4().hex}",
        sender="491709999999",
        at=timezone.now(),
        kind=kind,  # type: ignore[arg-type]
        text=text,
        payload={},
    )
    webhook_events_store(connection=connection, events=[event])
    apply_all()
    entry = Entry.objects.select_related("inbound").get(inbound__provider_message_id=event.provider_message_id)
    assert entry.inbound is not None
    type(entry.inbound).objects.filter(pk=entry.inbound.pk).update(payload=payload)
    return entry


def media_url(entry: Entry) -> str:
    return f"{INBOX}media/{entry.pk}/"


def assert_safe_headers(response: Any) -> None:
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert "private" in response["Cache-Control"] and "public" not in response["Cache-Control"]


# ------------------------------------------------------------------ what the thread shows, what the view serves
def test_a_whatsapp_image_is_a_lazy_thumbnail_served_inline(
    agent: Client, wa_fake: FakeWhatsApp, wa_conn: Connection
) -> None:
    entry = from_whatsapp(wa_fake, wa_conn, kind="image", text="Feinstaub am Neckartor", media_content=JPEG)
    page = agent.get(f"{INBOX}{entry.conversation_id}/").content.decode()
    assert re.search(rf'<img src="{media_url(entry)}"[^>]*loading="lazy"', page)
    assert f'<a href="{media_url(entry)}"' in page and "Feinstaub am Neckartor" in page
    response = agent.get(media_url(entry))
    assert response.status_code == 200 and response.content == JPEG
    assert response["Content-Type"] == "image/jpeg" and response["Content-Disposition"] == "inline"
    assert_safe_headers(response)


def test_a_telegram_voice_note_is_a_player_and_a_sticker_an_image(
    agent: Client, tg_fake: FakeTelegram, tenant: Tenant
) -> None:
    connection = telegram_connection(api_base=tg_fake.url)
    voice_update = tg_fake.inbound(chat_id=4242, kind="voice", file_id="AwACAgIAAxkBvoice", media_content=OGG)
    voice = file_events(connection, json.dumps(voice_update["update"]).encode())
    sticker_update = tg_fake.inbound(chat_id=4242, kind="sticker", file_id="CAACAgIAAxkBsticker", media_content=WEBP)
    sticker = file_events(connection, json.dumps(sticker_update["update"]).encode())
    page = agent.get(f"{INBOX}{voice.conversation_id}/").content.decode()
    assert f'<audio controls preload="none" src="{media_url(voice)}"' in page
    assert re.search(rf'<img src="{media_url(sticker)}"[^>]*loading="lazy"', page)
    response = agent.get(media_url(voice))
    assert (response.status_code, response["Content-Type"], response.content) == (200, "audio/ogg", OGG)
    assert agent.get(media_url(sticker))["Content-Type"] == "image/webp"


def test_a_document_is_a_download_with_its_name_and_size(
    agent: Client, wa_fake: FakeWhatsApp, wa_conn: Connection
) -> None:
    pdf = b"%PDF-1.7\n" + bytes(2048)
    entry = from_whatsapp(
        wa_fake, wa_conn, kind="document", mime_type="application/pdf", filename="Antrag 2026.pdf", media_content=pdf
    )
    page = agent.get(f"{INBOX}{entry.conversation_id}/").content.decode()
    assert f'<a href="{media_url(entry)}" class="media-file">Antrag 2026.pdf</a>' in page
    response = agent.get(media_url(entry))
    assert response.content == pdf and response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == 'attachment; filename="Antrag_2026.pdf"'
    assert_safe_headers(response)


def test_a_twilio_mms_image_is_fetched_through_the_cdn_redirect(
    agent: Client, tw_fake: FakeTwilio, tenant: Tenant
) -> None:
    connection = twilio_connection(api_base=tw_fake.url)
    url = tw_fake.add_media(JPEG, "image/jpeg")
    params = tw_fake.inbound(sender="+491705555555", text="Foto vom Stau", kind="media", media_urls=[url])["params"]
    entry = file_events(connection, urlencode(params).encode())
    assert re.search(rf'<img src="{media_url(entry)}"', agent.get(f"{INBOX}{entry.conversation_id}/").content.decode())
    response = agent.get(media_url(entry))
    assert (response.status_code, response["Content-Type"], response.content) == (200, "image/jpeg", JPEG)


@pytest.mark.parametrize(
    ("mime_type", "content"),
    [("image/svg+xml", SVG), ("text/html", HTML), ("application/xhtml+xml", HTML), ("image/jpeg; x=1", JPEG)],
)
def test_dangerous_types_are_always_downloads(
    agent: Client, wa_fake: FakeWhatsApp, wa_conn: Connection, mime_type: str, content: bytes
) -> None:
    kind = "image" if mime_type.startswith("image/") else "document"
    entry = from_whatsapp(
        wa_fake,
        wa_conn,
        kind=kind,
        mime_type=mime_type,
        filename='../../x"\r\nSet-Cookie: a=b.html',
        media_content=content,
    )
    response = agent.get(media_url(entry))
    assert response.status_code == 200 and response.content == content
    assert_safe_headers(response)
    if mime_type == "image/jpeg; x=1":  # parameters do not make a safe type unsafe
        assert response["Content-Type"] == "image/jpeg"
        return
    assert response["Content-Type"] == "application/octet-stream"
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment; filename=")
    name = disposition.removeprefix('attachment; filename="').removesuffix('"')
    assert re.fullmatch(r"[A-Za-z0-9._-]+", name) and not name.startswith("."), disposition


# ------------------------------------------------------------------ failures are words, not 500s
def test_an_expired_file_says_so(agent: Client, wa_fake: FakeWhatsApp, wa_conn: Connection) -> None:
    entry = from_whatsapp(wa_fake, wa_conn, kind="image", media_id="9988776655443322", media_content=JPEG)
    wa_fake.expire_media("9988776655443322")
    response = agent.get(media_url(entry))
    assert response.status_code == 404
    assert "The messenger no longer has this file" in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    page = agent.get(f"{INBOX}{entry.conversation_id}/").content.decode()
    assert 'data-media-failed="The file could not be loaded from the messenger."' in page


def test_a_failed_fetch_is_shown_in_german(agent: Client, wa_fake: FakeWhatsApp, wa_conn: Connection) -> None:
    entry = from_whatsapp(wa_fake, wa_conn, kind="audio", voice=True, mime_type="audio/ogg", media_content=OGG)
    wa_fake.expire_media(entry.inbound.payload["id"])  # type: ignore[union-attr]
    user = make_user(roles.INBOX_AGENT, username="agentin_de")
    user.language = "de"
    user.save(update_fields=["language"])
    agent.force_login(user)
    page = agent.get(media_url(entry)).content.decode()
    assert "Der Messenger hat diese Datei nicht mehr" in page


def test_files_above_the_limit_are_not_loaded(
    agent: Client, wa_fake: FakeWhatsApp, wa_conn: Connection, settings: Any
) -> None:
    settings.INBOX_MEDIA_MAX_BYTES = 1000
    entry = from_whatsapp(wa_fake, wa_conn, kind="video", mime_type="video/mp4", media_content=bytes(5000))
    response = agent.get(media_url(entry))
    assert response.status_code == 413 and "larger than 1 MB" in response.content.decode()
    assert not wa_fake.requests(kind="media_download")


def test_an_unreachable_provider_is_a_friendly_503(agent: Client, wa_conn: Connection, wa_fake: FakeWhatsApp) -> None:
    entry = from_whatsapp(wa_fake, wa_conn, kind="image", media_content=JPEG)
    Connection.objects.filter(pk=wa_conn.pk).update(api_base="http://127.0.0.1:9")  # nothing listens there
    response = agent.get(media_url(entry))
    assert response.status_code == 503 and "could not be reached" in response.content.decode()


# ------------------------------------------------------------------ who may see files
def test_only_inbox_users_may_fetch_files(client_a: Client, wa_fake: FakeWhatsApp, wa_conn: Connection) -> None:
    entry = from_whatsapp(wa_fake, wa_conn, kind="image", media_content=JPEG)
    assert client_a.get(media_url(entry)).status_code == 302  # not logged in: to the login
    approver = make_user(roles.APPROVER, username="ob_media")
    enrol_totp(approver)
    client_a.force_login(approver)
    assert client_a.get(media_url(entry)).status_code == 403
    assert not wa_fake.requests(kind="lookup"), "no provider call for someone without the inbox"
    client_a.force_login(make_user(roles.INBOX_AGENT, username="agent_media_ok"))
    assert client_a.get(media_url(entry)).status_code == 200


def test_an_agent_of_tenant_a_cannot_fetch_a_file_of_tenant_b(
    agent: Client, wa_fake: FakeWhatsApp, tenant_b: Tenant
) -> None:
    with schema_context(tenant_b.schema_name):
        connection_b = whatsapp_connection(api_base=wa_fake.url, pnid="106540352240001")
        entry_b = from_whatsapp(
            wa_fake, connection_b, kind="image", phone_number_id="106540352240001", media_content=JPEG
        )
    assert not Entry.objects.filter(pk=entry_b.pk).exists()  # tenant A has no entry with this id
    assert agent.get(media_url(entry_b)).status_code == 404
    assert not wa_fake.requests(kind="lookup")


def test_text_entries_and_notes_have_no_file(agent: Client, wa_fake: FakeWhatsApp, wa_conn: Connection) -> None:
    entry = from_whatsapp(wa_fake, wa_conn, kind="text", text="Nur Text")
    response = agent.get(media_url(entry))
    assert response.status_code == 404 and "no file" in response.content.decode()
    note = Entry.objects.create(conversation_id=entry.conversation_id, kind=Entry.Kind.NOTE, text="intern")
    assert agent.get(media_url(note)).status_code == 404
    assert agent.get(f"{INBOX}media/99999999/").status_code == 404


# ------------------------------------------------------------------ hostile and odd payloads
ODD_PAYLOADS: list[tuple[str, Any]] = [
    ("image", {}),
    ("image", {"id": None, "mime_type": 5}),
    ("sticker", {"id": ["x"], "mime_type": "image/webp"}),
    ("audio", {"id": "../../me", "voice": "yes"}),
    ("document", {"id": "1", "filename": {"x": 1}, "mime_type": None}),
    ("video", []),
    ("image", "just a string"),
    ("document", {"media": "x"}),
    ("unknown", {"type": "unsupported", "errors": [{"code": 131051}]}),
    ("location", {"latitude": "north", "longitude": None}),
    ("contacts", {"contacts": "not a list"}),
]


def test_odd_payloads_render_and_their_view_answers_in_words(
    agent: Client, wa_fake: FakeWhatsApp, wa_conn: Connection
) -> None:
    entries = [stored(wa_conn, kind, payload, text=f"odd {i}") for i, (kind, payload) in enumerate(ODD_PAYLOADS)]
    response = agent.get(f"{INBOX}{entries[0].conversation_id}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert all(f"odd {i}" in page for i in range(len(entries)))
    assert "A message type the messenger does not describe" in page
    for entry in entries:
        answer = agent.get(media_url(entry))
        assert answer.status_code in (404, 502), (entry.inbound.kind, answer.status_code)  # type: ignore[union-attr]


# ------------------------------------------------------------------ the thread stays cheap
def test_the_threads_query_count_does_not_grow_with_media(
    agent: Client, wa_fake: FakeWhatsApp, wa_conn: Connection
) -> None:
    first = from_whatsapp(wa_fake, wa_conn, kind="image", media_content=JPEG)
    thread = f"{INBOX}{first.conversation_id}/"
    few, _ = query_count(agent, thread)
    for kind in ("image", "audio", "document", "sticker", "video", "image"):
        from_whatsapp(wa_fake, wa_conn, kind=kind, media_content=JPEG)
    many, page = query_count(agent, thread)
    assert page.count("/admin/inbox/media/") >= 7
    assert many == few, (few, many)
    assert not wa_fake.requests(kind="lookup"), "rendering the thread asks the provider nothing"
