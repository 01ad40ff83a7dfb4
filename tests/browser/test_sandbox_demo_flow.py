"""Chromium against a live server: the demo's subscribe page shows a WhatsApp button, QR codes and
the e-mail form (DEMO_MODE look-alikes, issue 10 item 7); the button leads a demo user to the
phone simulator with the subscribe message typed in, the new phone's chat opens beside the list,
the welcome arrives there, and searching the list keeps the chat open (issue 10 item 5)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings
from playwright.sync_api import expect

from accounts import roles
from messengers.models import Contact
from messengers.selectors import connection_sandbox
from messengers.services import sandbox_demo_lookalikes_ensure
from tenants.models import Domain, Tenant
from tests.channels.factories import make_channel
from tests.conftest import LiveServer, in_tenant
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.browser

WELCOME = "Willkommen beim Feinstaubalarm der Demo-Stadt!"


def test_the_demo_whatsapp_button_opens_the_simulator_beside_the_list(
    page: Any, live_server_multitenant: LiveServer, committed_tenant: Callable[..., Tenant]
) -> None:
    server = live_server_multitenant
    tenant = committed_tenant("Stadt Demo")
    domain = Domain.objects.get(tenant=tenant, is_primary=True).domain
    with in_tenant(tenant):
        looks = sandbox_demo_lookalikes_ensure()
        sandbox = connection_sandbox()
        assert sandbox is not None
        make_channel("Feinstaubalarm", ["FEINSTAUB"], connections=[sandbox, *looks], welcome_text_de=WELCOME)
        make_user(roles.EDITOR, username="redaktion")
        Contact.objects.bulk_create(
            [Contact(connection=looks[0], address=f"+4915580{n:06d}", display_name=f"Nachbar {n}") for n in range(30)]
        )
    problems: list[str] = []
    page.on(
        "console",
        lambda message: problems.append(f"{message.text} {message.location}") if message.type == "error" else None,
    )
    page.on("response", lambda response: problems.append(response.url) if response.status == 404 else None)
    with override_settings(DEMO_MODE=True, PUBLIC_URL=f"http://localhost:{server.port}"):
        page.goto(server.url(domain, "/subscribe/"))
        whatsapp = page.locator("#channel-feinstaubalarm .messenger-whatsapp")
        expect(whatsapp.locator("a.button")).to_be_visible()
        expect(whatsapp.locator(".demo-note")).to_be_visible()
        expect(page.locator("#channel-feinstaubalarm .messenger-telegram a.button")).to_be_visible()
        expect(page.locator("#channel-feinstaubalarm figure.qr img")).to_have_count(2)
        expect(page.locator("#email-form .demo-note")).to_be_visible()

        whatsapp.locator("a.button").click()
        page.wait_for_url(re.compile(r"/login/"))
        page.fill("input[name=login]", "redaktion")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("#person-first")).to_have_value("START FEINSTAUB")
        expect(page.locator(".phones-pane .people li")).to_have_count(25)  # the first page of 30
        expect(page.locator(".sandbox .pages a[aria-current=page]")).to_have_text("1")

        page.fill("#person-name", "Erika Muster")
        page.click("form.new-person button[type=submit]")
        current = page.locator(".phones-pane .people li.current")
        expect(current).to_contain_text("Erika Muster")
        expect(page.locator("#phone")).to_be_visible()  # beside the list
        expect(page.locator(".bubble.in", has_text="START FEINSTAUB")).to_be_visible()
        expect(page.locator(".bubble.out", has_text=WELCOME)).to_be_visible()
        box_list = page.locator(".phones-pane").bounding_box()
        box_phone = page.locator("#phone").bounding_box()
        assert box_list["x"] + box_list["width"] <= box_phone["x"], (box_list, box_phone)

        page.fill("#phone-search", "erika")
        page.click(".phone-search button[type=submit]")
        expect(page.locator(".phones-pane .people li")).to_have_count(1)
        expect(page.locator("#phone")).to_be_visible()  # the chat stays open while searching
        page.fill("#composer-text", "STOP")
        page.click("#composer-send")
        expect(page.locator(".bubble.out", has_text="abgemeldet")).to_be_visible()
        page.goto("about:blank")  # stop the chat's polling before the tenant is dropped
    # no CSP errors, no missing files (the site has no favicon yet; not this test's concern)
    assert not [p for p in problems if "favicon.ico" not in p], problems
