"""The admin skin and navigation by task in Chromium (issue 10, items 1 and 2): an approver signs
in in German, sees what waits for them as a badge on "Zur Freigabe", follows it to exactly those
broadcasts, uses the user menu (keyboard too) and switches to English; an operator sees the
operator admin's own look. axe-core checks every page on the way."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from accounts import roles
from accounts.models import User
from broadcasts import services
from broadcasts.models import Broadcast
from core.colours import brand_on_light
from core.tenancy import connection
from messengers.selectors import connection_sandbox
from tenants.models import Tenant
from tests.broadcasts.factories import make_subscribers
from tests.browser.a11y import assert_accessible
from tests.channels.factories import make_channel
from tests.conftest import LiveServer, in_tenant
from tests.factories import PASSWORD, make_user
from tests.helpers import enrol_totp, totp_code_lasting

pytestmark = pytest.mark.browser

TEXT = {"de": "Ab morgen gilt Feinstaubalarm.", "en": "Particulate alarm from tomorrow."}


def _rgb(colour: str) -> str:
    return "rgb({}, {}, {})".format(*(int(colour[i : i + 2], 16) for i in (1, 3, 5)))


def _submitted(author: User, channel: Any, title: str) -> Broadcast:
    broadcast = services.broadcast_create(author=author, title=title, variants=dict(TEXT), channels=[channel])
    return services.broadcast_submit(broadcast=broadcast, actor=author)


def _sign_in(page: Any, url: str, username: str, password: str, secret: str) -> None:
    page.goto(url)
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/accounts/2fa/authenticate/"))
    page.fill("input[name=code]", totp_code_lasting(secret))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/"))


def test_approver_follows_the_badge_and_the_operator_sees_its_own_admin(
    browser: Any, live_server_multitenant: LiveServer, committed_tenant: Callable[..., Tenant]
) -> None:
    server = live_server_multitenant
    tenant = committed_tenant("Stadt Freigabe")
    Tenant.objects.filter(pk=tenant.pk).update(primary_color="#ffcc00")  # far too light for white text
    with in_tenant(tenant):
        sandbox = connection_sandbox()
        assert sandbox is not None
        channel = make_channel(
            "Feinstaub", ["FEINSTAUB"], connections=[sandbox], is_alarm=True, default_priority="alert"
        )
        make_subscribers(2, [channel], sandbox, prefix="+4915507")
        editor = make_user(roles.EDITOR, username="redaktion")
        approver = make_user(roles.APPROVER, username="freigabe")
        secret = enrol_totp(approver)
        waiting = {
            _submitted(editor, channel, "Feinstaub Montag").pk,
            _submitted(editor, channel, "Feinstaub Dienstag").pk,
        }
        own = _submitted(approver, channel, "Eigener Text")
    domain = tenant.domains.get(is_primary=True).domain

    context = browser.new_context(locale="de-DE")
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        _sign_in(page, server.url(domain, "/accounts/login/?next=/admin/"), "freigabe", PASSWORD, secret)
        page.goto(server.url(domain, "/admin/"))
        assert_accessible(page, "approver's start page [de-DE]")
        # the top bar carries the tenant's colour, darkened until white text on it passes AA
        background = page.eval_on_selector("#header", "el => getComputedStyle(el).backgroundColor")
        assert background == _rgb(brand_on_light("#ffcc00"))
        nav = page.get_by_role("navigation", name="Hauptnavigation")
        to_approve = nav.get_by_role("link", name=re.compile(r"^Zur Freigabe"))
        assert to_approve.locator(".task-nav-badge").inner_text().split()[0] == "2"
        assert to_approve.get_attribute("aria-current") is None
        assert nav.get_by_role("link", name="Einstellungen").count() == 0  # admins only

        # the user menu opens and closes with the keyboard
        menu_button = page.locator("#user-menu > summary")
        menu_button.focus()
        page.keyboard.press("Enter")
        assert page.get_by_role("link", name="Zwei-Faktor-Authentifizierung").is_visible()
        assert page.get_by_role("button", name="Abmelden").is_visible()
        assert_accessible(page, "user menu open [de-DE]")
        page.keyboard.press("Escape")
        assert not page.get_by_role("link", name="Zwei-Faktor-Authentifizierung").is_visible()

        # the badge leads to exactly what waits for this approver
        to_approve.click()
        page.wait_for_url(re.compile(r"/admin/broadcasts/broadcast/\?to_approve=me$"))
        assert_accessible(page, "to approve [de-DE]")
        rows = page.locator("#result_list tbody tr a[href*='/change/']")
        listed = {
            int(re.findall(r"/(\d+)/change/", rows.nth(i).get_attribute("href") or "")[0]) for i in range(rows.count())
        }
        assert listed == waiting and own.pk not in listed
        current = page.locator("#task-nav [aria-current=page]")
        assert current.count() == 1 and "Zur Freigabe" in current.inner_text()

        # language switch from the user menu (a POST form), back on the same page in English
        page.locator("#user-menu > summary").click()
        page.get_by_role("button", name="English").click()
        page.wait_for_load_state()
        assert (
            page.get_by_role("navigation", name="Main navigation")
            .get_by_role("link", name=re.compile(r"^To approve"))
            .is_visible()
        )
        assert "to_approve=me" in page.url
        assert_accessible(page, "to approve [en]")
    finally:
        context.close()


def test_operator_admin_looks_different(browser: Any, live_server_multitenant: LiveServer) -> None:
    server = live_server_multitenant
    suffix = uuid.uuid4().hex[:6]
    password = "Browser-Test-2026!"
    connection.set_schema_to_public()
    operator = User.objects.create_superuser(f"op{suffix}", f"op{suffix}@platform.example", password)
    secret = enrol_totp(operator)
    context = browser.new_context(locale="de-DE")
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        _sign_in(page, server.url("localhost", "/admin/"), operator.username, password, secret)
        page.goto(server.url("localhost", "/admin/"))
        assert_accessible(page, "operator start page [de-DE]")
        assert page.inner_text(".site-badge").strip().lower() == "betreiber"
        background = page.eval_on_selector("#header", "el => getComputedStyle(el).backgroundColor")
        assert background == _rgb("#1e293b")
        nav = page.get_by_role("navigation", name="Hauptnavigation")
        assert nav.locator("[aria-current=page]").inner_text().strip() == "Plattform-Übersicht"
        nav.get_by_role("link", name="Mandanten", exact=True).click()
        page.wait_for_url(re.compile(r"/admin/tenants/tenant/$"))
        assert_accessible(page, "operator's tenants [de-DE]")
        nav.get_by_role("link", name="Neuen Mandanten anlegen").click()
        page.wait_for_url(re.compile(r"/admin/tenants/tenant/onboard/$"))
        assert nav.locator("[aria-current=page]").inner_text().strip() == "Neuen Mandanten anlegen"
        # dark mode (the system's setting) passes too
        page.emulate_media(color_scheme="dark")
        page.reload()
        assert page.eval_on_selector("body", "el => getComputedStyle(el).backgroundColor") == _rgb("#0f1115")
        assert_accessible(page, "operator's onboarding, dark [de-DE]")
        page.emulate_media(color_scheme="light")
        page.reload()
        assert_accessible(page, "operator's onboarding [de-DE]")
    finally:
        context.close()
        User.objects.filter(pk=operator.pk).update(is_active=False, username=f"gone-{suffix}")
