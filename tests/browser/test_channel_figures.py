"""The channel figures in Chromium, in German: the list of channels and one channel's page with
its four charts pass axe-core, and the numbers shown are the roll-up's."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts import roles
from analytics.models import ChannelDay
from analytics.rollups.channels import channel_days_fold
from messengers.models import Connection
from subscribers.models import ConsentEvent, Subscriber
from tenants.models import Tenant
from tests.browser.a11y import assert_accessible
from tests.channels.factories import make_channel
from tests.conftest import LiveServer, in_tenant
from tests.factories import PASSWORD, make_user
from tests.subscribers.factories import sandbox

pytestmark = pytest.mark.browser


def test_channel_figures_render_with_charts_and_pass_axe(
    browser: Any, live_server_multitenant: LiveServer, committed_tenant: Callable[..., Tenant]
) -> None:
    tenant = committed_tenant("Stadt Zahlen")
    rng = random.Random(7)
    with in_tenant(tenant):
        telegram = Connection.objects.create(provider="telegram", name="Bot", public_address="@zahlen_bot")
        dust = make_channel("Feinstaub", ["FEINSTAUB"])
        traffic = make_channel("Verkehr", ["VERKEHR"])
        people = Subscriber.objects.bulk_create([Subscriber(name=f"P{i}") for i in range(120)])
        now = timezone.now()
        events = []
        for person in people:
            for channel in rng.sample([dust, traffic], rng.randint(1, 2)):
                source = rng.choice(["keyword", "qr", "import", "web_form"])
                events.append(ConsentEvent(
                    subscriber=person, channel=channel, kind="opt_in", source=source,
                    source_detail="HBF1" if source == "qr" else "", at=now - timedelta(days=rng.randrange(120)),
                    connection=rng.choice([sandbox(), telegram, None]) if source != "import" else None,
                ))  # fmt: skip
            if rng.random() < 0.2:
                events.append(ConsentEvent(subscriber=person, kind="opt_out", source="keyword",
                                           at=now - timedelta(days=rng.randrange(20))))  # fmt: skip
        ConsentEvent.objects.bulk_create(events)
        channel_days_fold()
        expected = ChannelDay.objects.filter(channel=dust).latest("day").subscribers
        make_user(roles.EDITOR, username="redaktion_zahlen")
    domain = tenant.domains.get(is_primary=True).domain
    server = live_server_multitenant
    context = browser.new_context(locale="de-DE")
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        page.goto(server.url(domain, "/accounts/login/?next=/admin/"))
        page.fill("input[name=login]", "redaktion_zahlen")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/admin/"))

        page.goto(server.url(domain, "/admin/analytics/channels/?days=90"))
        assert page.locator("#best-channel-name").count() == 1
        assert page.locator("svg[role=img]").count() == 1
        assert_accessible(page, "channel figures [de-DE]")

        page.goto(server.url(domain, f"/admin/channels/channel/{dust.pk}/change/"))
        page.click("#channel-figures-link")
        page.wait_for_url(re.compile(rf"/admin/analytics/channels/{dust.pk}/"))
        assert page.locator("#subscribers-end").inner_text() == str(expected)
        assert page.locator("svg[role=img]").count() == 4
        assert_accessible(page, "one channel's figures [de-DE]")
        page.goto(server.url(domain, f"/admin/analytics/channels/{dust.pk}/?days=365"))
        assert page.locator("#subscribers-end").inner_text() == str(expected)
        assert_accessible(page, "one channel's figures, a year [de-DE]")
        if os.environ.get("CHANNEL_FIGURES_SCREENSHOT"):
            page.screenshot(path=os.environ["CHANNEL_FIGURES_SCREENSHOT"], full_page=True)
    finally:
        context.close()
