"""Media in the inbox thread, in Chromium against a live server and the fake WhatsApp API: a photo
a citizen sent shows as a thumbnail (under the admin's CSP, no console errors), a voice message
as a player, and a file WhatsApp already deleted becomes a sentence instead of a broken image."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from accounts import roles
from inbox.models import Entry
from messengers.adapters import get_adapter
from messengers.adapters.base import WebhookRequest
from messengers.selectors import connection_config
from messengers.services import webhook_events_store
from tenants.models import Domain, Tenant
from tests.browser.a11y import assert_accessible
from tests.conftest import LiveServer, in_tenant
from tests.factories import PASSWORD, make_user
from tests.fakes.fixtures import (  # noqa: F401 - fixtures are found by name
    sink,
    wa_fake,
    webhook_sink,
    whatsapp_server,
)
from tests.fakes.whatsapp import FakeWhatsApp
from tests.messengers.support import apply_all, whatsapp_connection

pytestmark = pytest.mark.browser


def png(width: int = 24, height: int = 16) -> bytes:
    """A real (decodable) PNG: red pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\xcc\x22\x22" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_photos_show_and_deleted_files_say_so(
    page: Any,
    live_server_multitenant: LiveServer,
    committed_tenant: Callable[..., Tenant],
    request: pytest.FixtureRequest,
) -> None:
    fake: FakeWhatsApp = request.getfixturevalue("wa_fake")
    server = live_server_multitenant
    tenant = committed_tenant("Stadt Medien")
    domain = Domain.objects.get(tenant=tenant, is_primary=True).domain
    with in_tenant(tenant):
        connection = whatsapp_connection(api_base=fake.url, pnid="106540352249901")
        adapter = get_adapter(connection_config(connection))
        for inbound in (
            {"kind": "image", "text": "Rauch über dem Neckartor", "mime_type": "image/png", "media_content": png()},
            {"kind": "audio", "voice": True, "mime_type": "audio/ogg", "media_content": b"OggS" + bytes(100)},
            {"kind": "image", "media_id": "5550001112223334", "mime_type": "image/png", "media_content": png()},
        ):
            body = fake.inbound(phone_number_id="106540352249901", **inbound)["body"].encode()
            events = adapter.parse_webhook(WebhookRequest(method="POST", url="", headers={}, body=body))
            webhook_events_store(connection=connection, events=events)
        apply_all()
        conversation_id = Entry.objects.filter(kind="inbound").values_list("conversation_id", flat=True).first()
        make_user(roles.INBOX_AGENT, username="medien")
    fake.expire_media("5550001112223334")
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.text} {m.location}") if m.type == "error" else None)

    page.goto(server.url(domain, f"/admin/inbox/{conversation_id}/"))
    page.fill("input[name=login]", "medien")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    thumbnail = page.locator("#thread .media img").first
    expect(thumbnail).to_be_visible()
    page.wait_for_function("() => { const i = document.querySelector('#thread .media img'); return i && i.complete }")
    assert thumbnail.evaluate("img => img.naturalWidth") == 24
    expect(page.locator("#thread .media audio")).to_have_count(1)
    failed = page.locator("#thread .media-failed")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("The file could not be loaded from the messenger.")
    assert_accessible(page, "inbox, thread with media")
    failed.locator("a").click()
    expect(page.locator("p.media-failed")).to_contain_text("The messenger no longer has this file")
    # the deleted file's 404 is the only failed load; no CSP or script errors
    assert all("404" in problem for problem in problems), problems
