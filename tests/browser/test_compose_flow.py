"""Issue 10, item 4 in Chromium: an editor composes in German in two panes, picks an approved
WhatsApp template and fills its parameters (the preview shows the filled template and stays in
view while the form scrolls), switches the preview with the keyboard, saves, sees the send plan
beside the form, and sends a test to their own simulated phone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from accounts import roles
from broadcasts.models import Broadcast
from broadcasts.services.testsend import sandbox_test_address
from messengers.models import Connection, SandboxMessage, WhatsAppTemplate
from messengers.selectors import connection_sandbox
from tenants.models import Tenant
from tests.broadcasts.factories import make_subscribers
from tests.browser.a11y import assert_accessible
from tests.browser.test_broadcast_flow import _domain, _login
from tests.channels.factories import make_channel
from tests.conftest import LiveServer, in_tenant
from tests.factories import make_user

pytestmark = pytest.mark.browser

BODY = "Neu im Amtsblatt: {{1}}. Mehr unter {{2}}"


def test_compose_in_german_with_template_sticky_preview_plan_and_test(
    browser: Any, live_server_multitenant: LiveServer, committed_tenant: Callable[..., Tenant]
) -> None:
    tenant = committed_tenant("Stadt Zwei Spalten")
    with in_tenant(tenant):
        sandbox = connection_sandbox()
        assert sandbox is not None
        channel = make_channel("Amtsblatt", ["AMTSBLATT"], connections=[sandbox])
        make_subscribers(3, [channel], sandbox, prefix="+4915506")
        whatsapp = Connection.objects.create(provider="whatsapp", name="WhatsApp Stadt")
        WhatsAppTemplate.objects.create(connection=whatsapp, name="amtsblatt_neu", language="de", body=BODY)
        WhatsAppTemplate.objects.create(
            connection=whatsapp, name="drei_teile", language="de", body="{{1}} {{2}} {{3}}", parameter_count=3
        )
        editor = make_user(roles.EDITOR, username="redaktion")
    domain = _domain(tenant)
    server = live_server_multitenant

    page = browser.new_context(locale="de-DE", viewport={"width": 1400, "height": 900}).new_page()
    _login(page, server, domain, "redaktion")
    page.goto(server.url(domain, "/admin/broadcasts/broadcast/add/"))
    assert_accessible(page, "compose, German")
    assert "Vorschau" in page.inner_text("#bc-side") and "Versandplan" in page.inner_text("#bc-side")
    page.fill("input[name=title]", "Amtsblatt Mai")
    page.check(f"input[name=channels][value='{channel.pk}']")
    page.fill("textarea[name=body_de]", "Das neue Amtsblatt ist erschienen.")
    assert "Das neue Amtsblatt ist erschienen." in page.inner_text("#bc-text")

    # the template picker: the parameter fields follow the chosen template
    assert not page.locator("input[name=wa_param_1]").is_visible()
    page.select_option("select[name=wa_template]", "amtsblatt_neu|de")
    assert page.locator("input[name=wa_param_2]").is_visible()
    assert not page.locator("input[name=wa_param_3]").is_visible()
    page.fill("input[name=wa_param_1]", "Parkregeln")
    page.fill("input[name=wa_param_2]", "stuttgart.de/amtsblatt")
    assert page.inner_text("#bc-template-text") == "Neu im Amtsblatt: Parkregeln. Mehr unter stuttgart.de/amtsblatt"
    assert "Vorlage: amtsblatt_neu (de)" in page.inner_text("#bc-counters")
    assert_accessible(page, "compose with a template, German")

    # the preview stays in view while the form scrolls
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function("() => window.scrollY > 200")
    box = page.locator("#bc-preview").bounding_box()
    assert box is not None and 0 <= box["y"] < 900, box

    # real tabs: the arrow keys move between the messengers, the phone follows
    page.focus("#bc-kind-tabs [role=tab][aria-selected=true]")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#bc-tab-telegram", "aria-selected") == "true"
    assert page.evaluate("document.activeElement.id") == "bc-tab-telegram"
    assert page.get_attribute("#bc-phone", "data-kind") == "telegram"
    assert page.locator("#bc-template-note").is_hidden()  # the template is WhatsApp's
    page.keyboard.press("ArrowLeft")
    assert page.get_attribute("#bc-tab-whatsapp", "aria-selected") == "true"

    page.click("input[name=_continue]")
    page.wait_for_selector("#bc-plan")
    assert_accessible(page, "draft with send plan, German")
    with in_tenant(tenant):
        broadcast = Broadcast.objects.get(title="Amtsblatt Mai")
        assert broadcast.wa_template_params == ["Parkregeln", "stuttgart.de/amtsblatt"]
    assert page.inner_text("#bc-plan-total") == "3"
    assert "Neu im Amtsblatt: Parkregeln" in page.inner_text("#bc-template-text")

    page.click("#bc-test-send")
    page.wait_for_selector(".messagelist")
    assert "Test an Ihr Testtelefon" in page.inner_text(".messagelist")
    assert_accessible(page, "test sent, German")
    with in_tenant(tenant):
        texts = list(
            SandboxMessage.objects.filter(address=sandbox_test_address(editor))
            .order_by("pk")
            .values_list("text", flat=True)
        )
        assert texts == [
            "Das neue Amtsblatt ist erschienen.",
            "Neu im Amtsblatt: Parkregeln. Mehr unter stuttgart.de/amtsblatt",
        ]
        assert SandboxMessage.objects.filter(direction="out").count() == 2  # the subscribers got nothing
    page.click(".messagelist a")
    page.wait_for_selector(".bubble.out")
    assert "Das neue Amtsblatt ist erschienen." in page.inner_text("#chat")
    assert_accessible(page, "the test on the editor's own phone")
    page.context.close()
