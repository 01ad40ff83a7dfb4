"""Issue 10, item 3 in Chromium: an approver lands on the start page with "To approve" first, the
"Sending now" bar follows the deliveries without a reload, and when the send finishes it moves to
"Latest sent" and the page stops asking. In German, with axe checks on every state visited."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from accounts import roles
from broadcasts import services
from broadcasts.models import Broadcast, Delivery
from messengers.selectors import connection_sandbox
from tenants.models import Tenant
from tests.broadcasts.factories import make_subscribers
from tests.browser.a11y import assert_accessible
from tests.channels.factories import make_channel
from tests.conftest import LiveServer, in_tenant
from tests.factories import PASSWORD, make_user
from tests.helpers import enrol_totp, totp_code_lasting

pytestmark = pytest.mark.browser


def test_the_approver_start_page_is_live(
    browser: Any, live_server_multitenant: LiveServer, committed_tenant: Callable[..., Tenant]
) -> None:
    tenant = committed_tenant("Stadt Startseite")
    with in_tenant(tenant):
        sandbox = connection_sandbox()
        assert sandbox is not None
        channel = make_channel("Verkehr", ["VERKEHR"], connections=[sandbox])
        make_subscribers(4, [channel], sandbox, prefix="+4915507")
        editor = make_user(roles.EDITOR, username="redaktion")
        approver = make_user(roles.APPROVER, username="oberbuergermeister")
        secret = enrol_totp(approver)
        waiting = services.broadcast_create(
            author=editor, title="Baustelle Neckartor", channels=[channel], variants={"de": "Ab Montag gesperrt."}
        )
        services.broadcast_submit(broadcast=waiting, actor=editor)
        sending = Broadcast.objects.create(
            title="Umleitung U3", status=Broadcast.Status.SENDING, send_started_at=timezone.now()
        )
        now = timezone.now()
        Delivery.objects.bulk_create(
            [Delivery(broadcast=sending, connection=sandbox, language="de", next_attempt_at=now) for _ in range(4)]
        )
        domain = tenant.domains.get(is_primary=True).domain
    server = live_server_multitenant

    page = browser.new_context(locale="de-DE").new_page()
    page.goto(server.url(domain, "/accounts/login/?next=/admin/"))
    page.fill("input[name=login]", "oberbuergermeister")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/accounts/2fa/authenticate/"))
    page.fill("input[name=code]", totp_code_lasting(secret))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))
    assert_accessible(page, "start page of an approver, something sending")

    cards = page.locator(".start-card h2").all_inner_texts()
    assert cards[0].startswith("Zur Freigabe")
    assert "Baustelle Neckartor" in page.inner_text("#start-to-approve")
    bar = page.get_by_role("progressbar", name="Umleitung U3")
    assert bar.get_attribute("value") == "0.0"

    # half of it goes out: the bar follows without a reload
    with in_tenant(tenant):
        first_two = Delivery.objects.filter(broadcast=sending).order_by("pk").values("pk")[:2]
        Delivery.objects.filter(pk__in=first_two).update(status=Delivery.Status.DELIVERED)
    page.wait_for_function("() => document.querySelector('#start-sending progress')?.value === 50", timeout=15_000)
    assert page.inner_text("#start-sending [data-key=reached]") == "2"

    # the send finishes: it moves to "Latest sent", and the page stops polling
    with in_tenant(tenant):
        Delivery.objects.filter(broadcast=sending).update(status=Delivery.Status.READ)
        Broadcast.objects.filter(pk=sending.pk).update(status=Broadcast.Status.SENT, send_finished_at=timezone.now())
    page.wait_for_selector("#start-sending[data-poll='0']", timeout=15_000)
    assert "Umleitung U3" in page.inner_text("#start-latest-sent")
    assert "Gerade wird nichts gesendet" in page.inner_text("#start-sending")
    assert_accessible(page, "start page of an approver, nothing sending")
