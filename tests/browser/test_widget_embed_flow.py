"""Issue 10 in Chromium: a tenant admin copies the alarm widget's embed code from the channel's
admin page with one click, and the copied snippet is the widget on the tenant's own domain."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from accounts import roles
from tenants.models import Tenant
from tests.browser.a11y import assert_accessible
from tests.channels.factories import make_channel
from tests.conftest import LiveServer, in_tenant
from tests.factories import PASSWORD, make_user
from tests.helpers import enrol_totp, totp_code_lasting

pytestmark = pytest.mark.browser


def test_the_admin_copies_the_widget_embed_code(
    browser: Any, live_server_multitenant: LiveServer, committed_tenant: Callable[..., Tenant]
) -> None:
    tenant = committed_tenant("Stadt Widget")
    with in_tenant(tenant):
        channel = make_channel("Feinstaubalarm", ["FEINSTAUBALARM"], is_alarm=True)
        secret = enrol_totp(make_user(roles.ADMIN, username="webteam2"))
    domain = tenant.domains.get(is_primary=True).domain
    context = browser.new_context(locale="en-US")
    context.set_default_timeout(15_000)
    origin = live_server_multitenant.url(domain, "").rstrip("/")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
    page = context.new_page()
    try:
        page.goto(live_server_multitenant.url(domain, "/accounts/login/?next=/admin/"))
        assert_accessible(page, "staff login")
        page.fill("input[name=login]", "webteam2")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/accounts/2fa/authenticate/"))
        assert_accessible(page, "two-factor code")
        page.fill("input[name=code]", totp_code_lasting(secret))
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/admin/"))
        page.goto(live_server_multitenant.url(domain, f"/admin/channels/channel/{channel.pk}/change/"))
        assert_accessible(page, "channel change page")
        button = page.get_by_role("button", name="Copy")
        button.click()
        page.get_by_role("button", name="Copied").wait_for()
        assert_accessible(page, "channel change page after copying")
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == page.input_value("textarea.embed-code")
        assert copied.startswith(f'<iframe src="http://{domain}:') and "/status/feinstaubalarm/widget/" in copied
    finally:
        context.close()
