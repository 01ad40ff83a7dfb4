"""Chromium against a live server with committed data: keyword subscribe/unsubscribe on the
sandbox phone and the consent ledger, the subscribe page's QR codes, and the alarm status widget
embedded in an iframe on another site."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import override_settings
from playwright.sync_api import expect

from accounts import roles
from channels.services import channel_set_alarm_state
from messengers.models import Connection
from messengers.selectors import connection_sandbox
from subscribers.models import ConsentEvent
from tenants.models import Domain, Tenant
from tests.browser.a11y import assert_accessible
from tests.channels.factories import make_channel
from tests.conftest import LiveServer, in_tenant
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.browser

WELCOME = "Willkommen beim Feinstaubalarm der Stadt!"


def _domain(tenant: Tenant) -> str:
    return Domain.objects.get(tenant=tenant, is_primary=True).domain


def _sign_in(page: Any, server: LiveServer, domain: str, username: str) -> None:
    page.goto(server.url(domain, "/accounts/login/?next=/admin/"))
    assert_accessible(page, "staff login")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))
    assert_accessible(page, "admin start page")


def test_a_person_subscribes_and_unsubscribes_on_the_phone_and_the_ledger_shows_both(
    page: Any, live_server_multitenant: LiveServer, committed_tenant: Callable[..., Tenant]
) -> None:
    server = live_server_multitenant
    tenant = committed_tenant()
    domain = _domain(tenant)
    with in_tenant(tenant):
        sandbox = connection_sandbox()
        assert sandbox is not None
        make_channel("Feinstaubalarm", ["FEINSTAUB", "FEINSTAUBALARM"], is_alarm=True, welcome_text_de=WELCOME)
        make_user(roles.EDITOR, username="redaktion")
    with override_settings(PUBLIC_URL=f"http://localhost:{server.port}"):
        _sign_in(page, server, domain, "redaktion")
        page.goto(server.url(domain, f"/admin/messengers/connection/{sandbox.pk}/phones/"))
        assert_accessible(page, "sandbox simulator")
        page.fill("#person-name", "Erika Muster")
        page.click("form.new-person button[type=submit]")
        page.wait_for_selector("#composer-text")

        page.fill("#composer-text", "START FEINSTAUB")
        page.click("#composer-send")
        expect(page.locator(".bubble.out", has_text=WELCOME)).to_be_visible()
        expect(page.locator(".bubble.out", has_text="STOP FEINSTAUB")).to_be_visible()

        page.fill("#composer-text", "STOP")
        page.click("#composer-send")
        expect(page.locator(".bubble.out", has_text="von allen Themen abgemeldet")).to_be_visible()
        assert_accessible(page, "sandbox phone chat")

        page.goto(server.url(domain, "/admin/subscribers/consentevent/"))
        rows = page.locator("#result_list tbody tr")
        expect(rows).to_have_count(2)
        assert_accessible(page, "consent ledger")
        expect(rows.nth(0)).to_contain_text("Opt-out")  # newest first
        expect(rows.nth(1)).to_contain_text("Opt-in")
        expect(rows.nth(1)).to_contain_text("Feinstaubalarm")
    with in_tenant(tenant):
        assert list(ConsentEvent.objects.order_by("at").values_list("kind", "source")) == [
            ("opt_in", "keyword"), ("opt_out", "keyword")
        ]  # fmt: skip


def test_the_subscribe_page_shows_working_qr_codes(
    page: Any, live_server_multitenant: LiveServer, committed_tenant: Callable[..., Tenant]
) -> None:
    server = live_server_multitenant
    tenant = committed_tenant("Stadt QR")
    domain = _domain(tenant)
    with in_tenant(tenant):
        whatsapp = Connection.objects.create(
            provider="whatsapp", name="WhatsApp", public_address="+49 711 216-0", external_id="qr-test"
        )
        telegram = Connection.objects.create(provider="telegram", name="Bot", public_address="@stadt_qr_bot")
        sandbox = connection_sandbox()
        assert sandbox is not None
        make_channel("Feinstaubalarm", ["FEINSTAUB"], connections=[whatsapp, telegram, sandbox])
    with override_settings(PUBLIC_URL=f"http://localhost:{server.port}"):
        page.goto(server.url(domain, "/subscribe/"))
        expect(page.locator("h1")).to_contain_text("Stadt QR")
        expect(page.locator('a[href="https://wa.me/497112160?text=START%20FEINSTAUB"]')).to_be_visible()
        images = page.locator('figure.qr img[src*="/subscribe/qr/"]')
        expect(images).to_have_count(2)
        for index in range(2):
            image = images.nth(index)
            image.scroll_into_view_if_needed()
            page.wait_for_function("(img) => img.complete && img.naturalWidth > 100", arg=image.element_handle())
        assert_accessible(page, "subscribe page with QR codes")
        download = page.evaluate(
            """async (url) => {
                const response = await fetch(url);
                const body = await response.arrayBuffer();
                return {status: response.status, type: response.headers.get("content-type"), size: body.byteLength,
                        disposition: response.headers.get("content-disposition")};
            }""",
            "/subscribe/qr/feinstaubalarm/telegram.png?download=1",
        )
        assert download["status"] == 200 and download["type"] == "image/png" and download["size"] > 300
        assert download["disposition"].startswith("attachment;")


@pytest.fixture
def other_site() -> Iterator[tuple[str, list[str]]]:
    """A plain page on another origin (127.0.0.1) that embeds the widget; its HTML is set per test."""
    html: list[str] = [""]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's hook name
            body = html[0].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", html
    finally:
        server.shutdown()
        server.server_close()


def test_the_status_widget_renders_and_refreshes_inside_another_sites_iframe(
    page: Any,
    live_server_multitenant: LiveServer,
    committed_tenant: Callable[..., Tenant],
    other_site: tuple[str, list[str]],
) -> None:
    server = live_server_multitenant
    tenant = committed_tenant("Stadt Widget")
    domain = _domain(tenant)
    with in_tenant(tenant):
        channel = make_channel("Feinstaubalarm", ["FEINSTAUB"], is_alarm=True)
    url, html = other_site
    widget = server.url(domain, "/status/feinstaubalarm/widget/")
    html[0] = (
        "<!doctype html><html lang='de'><head><title>Stadtportal</title></head><body>"
        "<h1>Luftqualität</h1>"
        f"<iframe id='alarm' src='{widget}' title='Feinstaubalarm' width='420' height='140'></iframe>"
        "</body></html>"
    )
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.goto(url)
    frame = page.frame_locator("#alarm")
    expect(frame.locator("#alarm-state")).to_have_text("Kein Alarm")
    expect(frame.locator("#alarm-widget")).to_have_attribute("data-colour", "green")
    expect(frame.locator("[role=status]")).to_contain_text("Feinstaubalarm")
    assert_accessible(page, "status widget inside another site")

    with in_tenant(tenant), override_settings(ALARM_STATE_HOOKS=[]):
        channel_set_alarm_state(channel=channel, state="active", actor_label="test")
    # the widget polls every minute and whenever it becomes visible again; make it look now
    page.frame(url=re.compile(r"/status/feinstaubalarm/widget/")).evaluate(
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    expect(frame.locator("#alarm-state")).to_have_text("Alarm aktiv")
    expect(frame.locator("#alarm-widget")).to_have_attribute("data-colour", "red")
    expect(frame.locator("#alarm-since time")).to_have_count(1)
    assert_accessible(page, "status widget in alarm")
    assert not problems, problems  # no CSP or framing errors
