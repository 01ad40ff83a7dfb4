"""Issue 10's "done when", in one run through Chromium, in German, with axe-core on every page:
an editor logs in and lands on the start page, composes in two panes (the WhatsApp template
picked from the synced ones, its parameters filled, the preview filled in and still in view
after scrolling) and submits; the approver logs in with two factors, finds the broadcast through
the "Zur Freigabe" badge on the start page, approves it, and the progress on the page runs to
100 % while the sandbox phones receive it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from accounts import roles
from broadcasts.models import Broadcast
from messengers.models import Connection, SandboxMessage, WhatsAppTemplate
from messengers.selectors import connection_sandbox
from tenants.models import Tenant
from tests.broadcasts.factories import make_subscribers
from tests.browser.a11y import assert_accessible
from tests.channels.factories import make_channel
from tests.conftest import LiveServer, in_tenant
from tests.factories import PASSWORD, make_user
from tests.helpers import enrol_totp, totp_code_lasting

pytestmark = pytest.mark.browser

TEXT = "Ab morgen 6 Uhr gilt Feinstaubalarm. Bitte lassen Sie das Auto stehen."


def _login(page: Any, url: str, username: str, secret: str | None = None) -> None:
    page.goto(url)
    assert_accessible(page, "Anmeldung")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    if secret:
        page.wait_for_url(re.compile(r"/accounts/2fa/authenticate/"))
        page.fill("input[name=code]", totp_code_lasting(secret))
        page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))


def test_a_day_in_the_admin_in_german(
    browser: Any, live_server_multitenant: LiveServer, committed_tenant: Callable[..., Tenant]
) -> None:
    tenant = committed_tenant("Stadt Arbeitstag")
    with in_tenant(tenant):
        sandbox = connection_sandbox()
        assert sandbox is not None
        channel = make_channel("Feinstaubalarm", ["FEINSTAUB"], connections=[sandbox])
        make_subscribers(3, [channel], sandbox, prefix="+4915508")
        whatsapp = Connection.objects.create(provider="whatsapp", name="WhatsApp Stadt", status="paused")
        WhatsAppTemplate.objects.create(
            connection=whatsapp, name="feinstaub_start", language="de", body="Feinstaubalarm ab {{1}}: {{2}}"
        )
        make_user(roles.EDITOR, username="redaktion")
        secret = enrol_totp(make_user(roles.APPROVER, username="oberbuergermeister"))
        domain = tenant.domains.get(is_primary=True).domain
    server = live_server_multitenant
    login = server.url(domain, "/accounts/login/?next=/admin/")

    # the editor: start page, then compose in two panes
    editor = browser.new_context(locale="de-DE", viewport={"width": 1400, "height": 900}).new_page()
    _login(editor, login, "redaktion")
    assert editor.locator("a[data-nav=broadcasts]").inner_text().strip().startswith("Aussendungen")
    assert editor.locator("a[data-nav=to_approve]").count() == 0  # editors approve nothing
    assert_accessible(editor, "Startseite der Redaktion")
    editor.click("a[data-nav=broadcasts]")
    editor.wait_for_url(re.compile(r"/admin/broadcasts/broadcast/$"))
    assert_accessible(editor, "Liste der Aussendungen")
    editor.goto(server.url(domain, "/admin/broadcasts/broadcast/add/"))
    editor.fill("input[name=title]", "Feinstaubalarm ab morgen")
    editor.check(f"input[name=channels][value='{channel.pk}']")
    editor.fill("textarea[name=body_de]", TEXT)
    editor.select_option("select[name=wa_template]", "feinstaub_start|de")
    editor.fill("input[name=wa_param_1]", "morgen 6 Uhr")
    editor.fill("input[name=wa_param_2]", "Bitte Bus und Bahn nehmen")
    assert editor.inner_text("#bc-template-text") == "Feinstaubalarm ab morgen 6 Uhr: Bitte Bus und Bahn nehmen"
    editor.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    editor.wait_for_function("() => window.scrollY > 200")
    box = editor.locator("#bc-preview").bounding_box()
    assert box is not None and 0 <= box["y"] < 900, box  # the preview stays beside the form
    assert "Feinstaubalarm" in editor.inner_text("#bc-text")
    assert_accessible(editor, "Verfassen mit Vorlage")
    editor.click("input[name=_continue]")
    editor.wait_for_selector("#bc-do-submit")
    assert editor.inner_text("#bc-plan-total") == "3"  # the send plan before submitting
    editor.click("#bc-do-submit")
    editor.wait_for_selector("#bc-status")
    assert_accessible(editor, "eingereichte Aussendung")
    editor.context.close()

    # the approver: the badge on the start page leads to the broadcast; approve; live progress
    approver = browser.new_context(locale="de-DE", viewport={"width": 1400, "height": 900}).new_page()
    _login(approver, login, "oberbuergermeister", secret)
    badge = approver.locator("a[data-nav=to_approve] [data-badge=to_approve]")
    assert badge.inner_text().strip().startswith("1")
    assert approver.locator(".start-card h2").first.inner_text().startswith("Zur Freigabe")
    assert_accessible(approver, "Startseite der Freigabe")
    approver.click("a[data-nav=to_approve]")
    approver.wait_for_url(re.compile(r"to_approve=me"))
    assert_accessible(approver, "Zur Freigabe")
    rows = approver.locator("#result_list tbody tr a[href*='/change/']")
    assert rows.count() == 1
    rows.first.click()
    approver.wait_for_selector("#bc-do-approve")
    assert_accessible(approver, "Aussendung zur Freigabe")
    approver.click("#bc-do-approve")  # tasks run inline in tests: the send happens here
    approver.wait_for_function(
        "() => document.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow') === '100.0'",
        timeout=30_000,
    )
    assert_accessible(approver, "Fortschritt bei 100 %")
    with in_tenant(tenant):
        assert Broadcast.objects.get(title="Feinstaubalarm ab morgen").status == Broadcast.Status.SENT
        assert SandboxMessage.objects.filter(direction="out", text=TEXT).count() == 3
    approver.context.close()
