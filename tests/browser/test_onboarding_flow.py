"""The operator signs in (with two-factor), onboards a tenant through the form, and the new
tenant's admin chooses a password, enrols two-factor and reaches the admin on its own domain."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.test import override_settings

from accounts.models import User
from core.tenancy import connection
from tenants.models import Tenant
from tests.browser.a11y import assert_accessible
from tests.conftest import LiveServer
from tests.helpers import enrol_totp, totp_code

pytestmark = pytest.mark.browser


def test_operator_onboards_a_tenant_whose_admin_then_signs_in(
    page: Any, live_server_multitenant: LiveServer, django_db_blocker: Any
) -> None:
    server = live_server_multitenant
    suffix = uuid.uuid4().hex[:6]
    schema, domain = f"b_{suffix}", f"b-{suffix}.localhost"
    password = "Browser-Test-2026!"
    connection.set_schema_to_public()
    operator = User.objects.create_superuser(f"op{suffix}", f"op{suffix}@platform.example", password)
    operator_secret = enrol_totp(operator)
    try:
        with override_settings(PUBLIC_URL=f"http://localhost:{server.port}"):
            # 1. the operator signs in: password, then the authenticator code
            page.goto(server.url("localhost", "/admin/"))
            assert_accessible(page, "operator login")
            page.fill("input[name=login]", operator.username)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r"/accounts/2fa/authenticate/"))
            assert_accessible(page, "operator two-factor code")
            page.fill("input[name=code]", totp_code(operator_secret))
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r"/admin/$"))
            assert_accessible(page, "operator start page")

            # 2. onboarding form
            page.goto(server.url("localhost", "/admin/tenants/tenant/onboard/"))
            assert_accessible(page, "onboarding form")
            page.fill("input[name=name]", "Stadt Browserhausen")
            page.fill("input[name=schema_name]", schema)
            page.fill("input[name=domain]", domain)
            page.fill("input[name=admin_email]", f"admin@{suffix}.example")
            page.click("#onboard-submit")
            page.wait_for_selector("#password-link")
            assert page.locator("#onboard-steps li").count() >= 4
            assert_accessible(page, "onboarding result")
            link = page.inner_text("#password-link").strip()
            # the result names who logs in, and where
            username = page.inner_text("#tenant-admin-username").strip()
            login_url = page.inner_text("#tenant-admin-url").strip()
            assert login_url == f"http://{domain}:{server.port}/admin/"
            assert link.startswith(f"http://{domain}:{server.port}/accounts/password/reset/key/")

            # 3. the new admin chooses a password on the tenant's own domain
            page.goto(link)
            assert_accessible(page, "choose a password")
            page.fill("input[name=password1]", "Neues-Passwort-2026!")
            page.fill("input[name=password2]", "Neues-Passwort-2026!")
            page.click("button[type=submit]")

            # 4. ... signs in there, is sent to two-factor set-up, enrols, and reaches the admin
            page.goto(login_url)
            page.wait_for_url(re.compile(r"/accounts/login/"))
            assert_accessible(page, "tenant staff login")
            page.fill("input[name=login]", username)
            page.fill("input[name=password]", "Neues-Passwort-2026!")
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r"/accounts/2fa/totp/activate/"))
            secret = page.input_value("#authenticator_secret")
            assert_accessible(page, "two-factor set-up")
            page.fill("input[name=code]", totp_code(secret))
            page.click("button[type=submit]")
            page.goto(server.url(domain, "/admin/"))
            assert page.url.endswith("/admin/")
            assert "Stadt Browserhausen" in page.inner_text("#site-name")
            # 5. the first login shows where to begin
            assert page.locator("#first-steps li").count() == 3
            assert_accessible(page, "first steps on the tenant's start page")
    finally:
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        Tenant.objects.filter(schema_name=schema).delete()
        # operators are never deleted (Django's collector would follow relations into tenant-only
        # tables that do not exist in public); deactivate instead, as the operator admin does
        User.objects.filter(pk=operator.pk).update(is_active=False, username=f"gone-{suffix}")
