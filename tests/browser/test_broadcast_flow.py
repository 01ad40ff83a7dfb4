"""Issue 5 in Chromium: an editor composes a Feinstaubalarm broadcast, a second user with the
approver role approves it, the sandbox phones receive it and the progress bar reaches 100 %.
And (issue 8): an approver is not offered to approve what they wrote, the page of a sent
broadcast previews what went out, and the live progress follows the end of a send."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from accounts import roles
from broadcasts.models import Broadcast
from messengers.models import Contact, SandboxMessage
from messengers.selectors import connection_sandbox
from tenants.models import Tenant
from tests.broadcasts.factories import make_subscribers
from tests.browser.a11y import assert_accessible
from tests.channels.factories import make_channel
from tests.conftest import LiveServer, in_tenant
from tests.factories import PASSWORD, make_user
from tests.helpers import enrol_totp, totp_code_lasting

pytestmark = pytest.mark.browser


def _domain(tenant: Tenant) -> str:
    return tenant.domains.get(is_primary=True).domain


def _login(page: Any, server: LiveServer, domain: str, username: str, secret: str | None = None) -> None:
    page.goto(server.url(domain, "/accounts/login/?next=/admin/"))
    assert_accessible(page, "staff login")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    if secret:
        page.wait_for_url(re.compile(r"/accounts/2fa/authenticate/"))
        assert_accessible(page, "two-factor code")
        page.fill("input[name=code]", totp_code_lasting(secret))
        page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/"))
    assert_accessible(page, "admin start page")


def test_compose_approve_deliver_to_sandbox_phones(
    browser: Any, live_server_multitenant: LiveServer, committed_tenant: Callable[..., Tenant]
) -> None:
    tenant = committed_tenant("Landeshauptstadt Test")
    with in_tenant(tenant):
        sandbox = connection_sandbox()
        assert sandbox is not None
        channel = make_channel(
            "Feinstaubalarm", ["FEINSTAUBALARM"], connections=[sandbox], is_alarm=True, default_priority="alert"
        )
        make_subscribers(3, [channel], sandbox, prefix="+4915509")
        make_user(roles.EDITOR, username="redaktion")
        approver = make_user(roles.APPROVER, username="oberbuergermeister")
        secret = enrol_totp(approver)
        phone = Contact.objects.filter(connection=sandbox).order_by("pk").first()
        assert phone is not None
    domain = _domain(tenant)
    server = live_server_multitenant

    editor_page = browser.new_context(locale="en-US").new_page()
    _login(editor_page, server, domain, "redaktion")
    editor_page.goto(server.url(domain, "/admin/broadcasts/broadcast/add/"))
    assert_accessible(editor_page, "compose")
    editor_page.fill("input[name=title]", "Feinstaubalarm ab morgen")
    editor_page.check(f"input[name=channels][value='{channel.pk}']")
    editor_page.fill("textarea[name=body_de]", "Ab morgen 6 Uhr gilt Feinstaubalarm. Bitte lassen Sie das Auto stehen.")
    assert "Feinstaubalarm" in editor_page.inner_text("#bc-text")  # the live preview follows the typing
    editor_page.click("input[name=_continue]")
    editor_page.wait_for_selector("#bc-do-submit")
    assert_accessible(editor_page, "draft broadcast")
    editor_page.click("#bc-do-submit")
    editor_page.wait_for_selector("#bc-status")
    assert_accessible(editor_page, "submitted broadcast")
    with in_tenant(tenant):
        broadcast = Broadcast.objects.get(title="Feinstaubalarm ab morgen")
        assert broadcast.status == Broadcast.Status.SUBMITTED

    approver_page = browser.new_context(locale="en-US").new_page()
    _login(approver_page, server, domain, "oberbuergermeister", secret)
    approver_page.goto(server.url(domain, f"/admin/broadcasts/broadcast/{broadcast.pk}/change/"))
    assert_accessible(approver_page, "broadcast to approve")
    approver_page.click("#bc-do-approve")  # tasks run inline in tests: the send happens here
    approver_page.wait_for_function(
        "() => document.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow') === '100.0'",
        timeout=30_000,
    )
    assert approver_page.locator("dd[data-key=total]").inner_text() == "3"
    assert_accessible(approver_page, "progress at 100 %")

    with in_tenant(tenant):
        assert Broadcast.objects.get(pk=broadcast.pk).status == Broadcast.Status.SENT
        assert SandboxMessage.objects.filter(direction="out", text__contains="Feinstaubalarm").count() == 3
    # the sent broadcast's page previews what went out (read-only), with its real length
    approver_page.goto(server.url(domain, f"/admin/broadcasts/broadcast/{broadcast.pk}/change/"))
    assert "Ab morgen 6 Uhr gilt Feinstaubalarm" in approver_page.inner_text("#bc-text")
    assert approver_page.locator("#bc-counters li").first.inner_text().startswith("70 of 4096")
    assert approver_page.locator("textarea[name=body_de]").count() == 0
    assert_accessible(approver_page, "sent broadcast")
    editor_page.goto(server.url(domain, f"/admin/messengers/connection/{sandbox.pk}/phones/{phone.pk}/"))
    editor_page.wait_for_selector(".bubble.out")
    assert "Ab morgen 6 Uhr gilt Feinstaubalarm" in editor_page.inner_text("#chat")
    assert_accessible(editor_page, "sandbox phone chat")
    editor_page.context.close()  # its phone page polls on; the tenant is dropped after the test
    approver_page.context.close()


def test_the_author_is_offered_no_approve_button_and_told_why(
    browser: Any, live_server_multitenant: LiveServer, committed_tenant: Callable[..., Tenant]
) -> None:
    tenant = committed_tenant("Stadt Vier Augen")
    with in_tenant(tenant):
        sandbox = connection_sandbox()
        assert sandbox is not None
        channel = make_channel("Verkehr", ["VERKEHR"], connections=[sandbox])
        make_subscribers(1, [channel], sandbox, prefix="+4915508")
        author = make_user(roles.APPROVER, username="pressestelle")
        secret = enrol_totp(author)
        from broadcasts import services

        broadcast = services.broadcast_create(
            author=author, title="Eigene Meldung", channels=[channel], variants={"de": "Text"}
        )
        services.broadcast_submit(broadcast=broadcast, actor=author)
    page = browser.new_context(locale="en-US").new_page()
    _login(page, live_server_multitenant, _domain(tenant), "pressestelle", secret)
    url = live_server_multitenant.url(_domain(tenant), f"/admin/broadcasts/broadcast/{broadcast.pk}/change/")
    for language, reason in (("en", "You wrote this broadcast"), ("de", "Sie haben diese Aussendung verfasst")):
        # one login (a TOTP code works once); the language cookie switches the admin's language
        page.context.add_cookies([{"name": "django_language", "value": language, "url": url}])
        page.goto(url)
        assert page.locator("#bc-do-approve").count() == 0
        assert reason in page.inner_text("#bc-approval-blocked")
        assert page.locator("#bc-do-reject").count() == 1
        assert_accessible(page, f"broadcast its author may not approve [{language}]")
    page.context.close()
    with in_tenant(tenant):
        assert Broadcast.objects.get(pk=broadcast.pk).status == Broadcast.Status.SUBMITTED


@pytest.mark.parametrize(
    ("locale", "during", "after"), [("en-US", "Sending", "Sent"), ("de-DE", "Wird gesendet", "Gesendet")]
)
def test_the_progress_panel_follows_the_send_to_its_end_without_a_reload(
    browser: Any,
    live_server_multitenant: LiveServer,
    committed_tenant: Callable[..., Tenant],
    locale: str,
    during: str,
    after: str,
) -> None:
    from broadcasts import pipeline, services
    from broadcasts.models import Delivery
    from broadcasts.services import sending

    tenant = committed_tenant("Stadt Fortschritt")
    with in_tenant(tenant):
        sandbox = connection_sandbox()
        assert sandbox is not None
        channel = make_channel("Verkehr", ["VERKEHR"], connections=[sandbox])
        make_subscribers(4, [channel], sandbox, prefix="+4915507")
        make_user(roles.EDITOR, username="redaktion")
        broadcast = services.broadcast_create(
            author=None, title="Sperrung", channels=[channel], variants={"de": "Die Brücke ist gesperrt."}
        )
        Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.SENDING)
        pipeline.fanout(Broadcast.objects.get(pk=broadcast.pk))
        first, second, *_ = Delivery.objects.filter(broadcast=broadcast).order_by("pk")
        Delivery.objects.filter(pk=first.pk).update(status=Delivery.Status.SENDING)
        Delivery.objects.filter(pk=second.pk).update(status=Delivery.Status.SENT)
    page = browser.new_context(locale=locale).new_page()
    _login(page, live_server_multitenant, _domain(tenant), "redaktion")
    page.goto(live_server_multitenant.url(_domain(tenant), f"/admin/broadcasts/broadcast/{broadcast.pk}/change/"))
    assert page.inner_text("#bc-status") == during
    assert page.locator("#bc-do-pause").is_visible() and page.locator("#bc-do-cancel").is_visible()
    assert page.inner_text("dd[data-key=in_flight]") == "1"
    assert_accessible(page, f"progress while sending [{locale}]")
    assert page.inner_text("#bc-preview") and "Die Brücke ist gesperrt." in page.inner_text("#bc-text")
    with in_tenant(tenant):  # the last messages go out while the page is open
        Delivery.objects.filter(broadcast=broadcast).update(status=Delivery.Status.DELIVERED)
        assert sending._maybe_finish(broadcast.pk)
    page.wait_for_function(
        "(label) => document.getElementById('bc-status').textContent === label", arg=after, timeout=15_000
    )
    assert not page.locator("#bc-do-pause").is_visible() and not page.locator("#bc-do-cancel").is_visible()
    assert page.inner_text("dd[data-key=in_flight]") == "0" and page.inner_text("dd[data-key=delivered]") == "4"
    assert page.inner_text("#bc-percent").startswith("100")
    assert_accessible(page, f"progress after the send [{locale}]")
    page.context.close()
