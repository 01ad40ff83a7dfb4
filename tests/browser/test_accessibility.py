"""Issue 10, item 9 in Chromium: every public page a citizen can reach (subscribe with its e-mail
form and its errors, e-mail sent, confirm and confirmed, preferences, unsubscribe and
unsubscribed, archive, status widget, invalid link, poster) and the staff login pass axe-core
with no critical or serious violation, in German and in English, for a tenant with a light
brand colour; and so do the tenant admin pages the admin reskin does not redraw (settings,
import)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from broadcasts import services as broadcast_services
from broadcasts.models import Broadcast
from messengers.models import Connection
from messengers.selectors import connection_sandbox
from subscribers import links
from subscribers.services import poster_create, subscriber_import_create
from tenants.models import Tenant
from tests.browser.a11y import assert_accessible
from tests.channels.factories import make_channel
from tests.conftest import LiveServer, in_tenant
from tests.factories import PASSWORD, make_user
from tests.helpers import enrol_totp, totp_code_lasting
from tests.subscribers.factories import make_people

pytestmark = pytest.mark.browser

CONFIRM_PATH = re.compile(r"(/subscribe/confirm/[^/\s]+/)")


def _public_tenant(make_tenant: Callable[..., Tenant]) -> tuple[Tenant, dict[str, str]]:
    """A tenant with everything the public pages can show: messengers with QR codes, e-mail, an
    alarm channel, a sent broadcast in the archive, a poster, and two people with personal links."""
    tenant = make_tenant("Stadt Barrierefrei")
    # a light brand colour: the pages must keep AA contrast with whatever colour a city chose
    Tenant.objects.filter(pk=tenant.pk).update(primary_color="#ffcc00")
    tenant.refresh_from_db()
    with in_tenant(tenant):
        whatsapp = Connection.objects.create(
            provider="whatsapp", name="WhatsApp", public_address="+49 711 216-0", external_id="a11y-wa"
        )
        telegram = Connection.objects.create(provider="telegram", name="Bot", public_address="@stadt_a11y_bot")
        email = Connection.objects.create(provider="email", name="Newsletter", external_id="news@a11y.example")
        sandbox = connection_sandbox()
        assert sandbox is not None
        channel = make_channel(
            "Feinstaubalarm", ["FEINSTAUB"], connections=[whatsapp, telegram, email, sandbox], is_alarm=True
        )
        make_channel("Verkehr", ["VERKEHR"], connections=[whatsapp, email])
        broadcast = broadcast_services.broadcast_create(
            author=None, title="intern: Alarm 12", channels=[channel], variants={"de": "Ab morgen gilt Feinstaubalarm."}
        )
        Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.SENT, send_finished_at=timezone.now())
        poster = poster_create(channel=channel, provider="whatsapp", label="Rathaus")
        people = make_people(2, [channel], sandbox, prefix="+4915511")
        paths = {
            "poster": reverse("subscribers:poster", args=[poster.code]),
            "widget": reverse("channels:status_widget", args=[channel.slug]) + "?lang=",
        }
        for language, person in zip(("de", "en"), people, strict=True):
            paths[f"preferences-{language}"] = reverse(
                "subscribers:preferences", args=[links.subscriber_token(person, links.PREFERENCES)]
            )
            paths[f"unsubscribe-{language}"] = reverse(
                "subscribers:unsubscribe", args=[links.subscriber_token(person, links.UNSUBSCRIBE)]
            )
    return tenant, paths


@pytest.mark.parametrize("locale", ["de-DE", "en-US"])
def test_every_public_page_and_the_staff_login_pass_axe(
    browser: Any, live_server_multitenant: LiveServer, committed_tenant: Callable[..., Tenant], locale: str
) -> None:
    language = locale[:2]
    tenant, paths = _public_tenant(committed_tenant)
    domain = tenant.domains.get(is_primary=True).domain
    server = live_server_multitenant
    cache.clear()  # the sign-up form's per-network limit
    mail.outbox.clear()
    context = browser.new_context(locale=locale)
    context.set_default_timeout(15_000)
    page = context.new_page()

    def visit(path: str, what: str) -> None:
        page.goto(server.url(domain, path))
        assert page.locator("html").get_attribute("lang") == language, what
        assert_accessible(page, f"{what} [{locale}]")

    try:
        visit("/", "subscribe page (bare domain)")
        visit("/subscribe/?channel=feinstaubalarm", "subscribe page")
        visit(f"/subscribe/?poster={paths['poster'].rstrip('/').rsplit('/', 1)[-1]}", "subscribe page from a poster")

        page.click("#email-form button[type=submit]")  # nothing filled in: the form shows its errors
        page.wait_for_selector(".errorlist")
        assert_accessible(page, f"subscribe page with form errors [{locale}]")

        page.fill("input[name=email]", f"erika-{language}@example.org")
        page.check("input[name=consent]")
        page.click("#email-form button[type=submit]")
        page.wait_for_url(re.compile(r"/subscribe/email/sent/$"))
        assert_accessible(page, f"e-mail sent [{locale}]")

        match = CONFIRM_PATH.search(str(mail.outbox[-1].body))
        assert match, mail.outbox[-1].body
        visit(match.group(1), "e-mail confirm")
        page.click("main form button[type=submit]")
        page.wait_for_selector("a[href*='/preferences/']")
        assert_accessible(page, f"e-mail confirmed [{locale}]")

        visit(paths[f"preferences-{language}"], "preferences")
        page.click("main form button[type=submit]:not([name=unsubscribe_all])")
        page.wait_for_selector(".messages")
        assert_accessible(page, f"preferences saved [{locale}]")

        visit(paths[f"unsubscribe-{language}"], "unsubscribe")
        page.click("main form button[type=submit]")
        page.wait_for_load_state()
        assert_accessible(page, f"unsubscribed [{locale}]")

        visit("/archive/", "archive")
        visit(paths["widget"] + language, "status widget")  # the embedding site chooses its language
        visit("/preferences/not-a-token/", "invalid link")
        visit(paths["poster"], "poster")
        visit("/accounts/login/?next=/admin/", "staff login")
        page.fill("input[name=login]", "nobody")
        page.fill("input[name=password]", "wrong")
        page.click("button[type=submit]")
        page.wait_for_selector(".errorlist, .alert, [role=alert]")
        assert_accessible(page, f"staff login with an error [{locale}]")
        visit("/accounts/password/reset/", "password reset")
    finally:
        context.close()


def test_the_tenant_admin_pages_outside_the_reskin_pass_axe(
    browser: Any, live_server_multitenant: LiveServer, committed_tenant: Callable[..., Tenant]
) -> None:
    """Settings (also with an error), the import form and an import's page with its progress bar
    and rejected rows, in German, as the tenant's admin after two-factor sign-in."""
    tenant = committed_tenant("Stadt Einstellungen")
    with in_tenant(tenant):
        email = Connection.objects.create(provider="email", name="Newsletter", external_id="news@a11y-admin.example")
        make_channel("Verkehr", ["VERKEHR"], connections=[email])
        secret = enrol_totp(make_user(roles.ADMIN, username="webteam"))
        rows = "name,email,channels,consent_source,consent_date\nErika,erika@example.org,Verkehr,form,2026-01-05\n"
        job = subscriber_import_create(filename="liste.csv", data=(rows + "Kaputt,keine-adresse,Verkehr,,\n").encode())
    domain = tenant.domains.get(is_primary=True).domain
    server = live_server_multitenant
    context = browser.new_context(locale="de-DE")
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        page.goto(server.url(domain, "/accounts/login/?next=/admin/"))
        page.fill("input[name=login]", "webteam")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/accounts/2fa/authenticate/"))
        assert_accessible(page, "two-factor code [de-DE]")
        page.fill("input[name=code]", totp_code_lasting(secret))
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/admin/"))

        page.goto(server.url(domain, "/admin/settings/"))
        assert_accessible(page, "settings")
        page.fill("input[name=name]", "")
        page.click("#settings-save")
        page.wait_for_selector(".errorlist")
        assert_accessible(page, "settings with an error")

        page.goto(server.url(domain, "/admin/subscribers/subscriberimport/add/"))
        assert_accessible(page, "import form")
        page.goto(server.url(domain, f"/admin/subscribers/subscriberimport/{job.pk}/change/"))
        page.wait_for_selector("#import-progress")
        assert page.get_by_role("progressbar", name="Fortschritt").count() == 1
        assert_accessible(page, "import page")
    finally:
        context.close()
