"""German first, English second: staff pages default to German; the browser, a choice (cookie) or
the user's own setting switch to English."""

from __future__ import annotations

from django.test import Client

from accounts import roles
from tenants.models import Tenant
from tests.factories import make_user


def test_login_page_is_german_by_default_and_english_on_request(tenant: Tenant) -> None:
    german = Client(HTTP_HOST="tenant-a.localhost").get("/accounts/login/")
    assert german["Content-Language"] == "de"
    assert "Anmelden" in german.content.decode()
    english = Client(HTTP_HOST="tenant-a.localhost", HTTP_ACCEPT_LANGUAGE="en").get("/accounts/login/")
    assert english["Content-Language"] == "en"
    assert "Sign In" in english.content.decode()


def test_a_staff_users_own_language_wins(tenant: Tenant) -> None:
    user = make_user(roles.EDITOR, username="english_editor")
    user.language = "en"
    user.save(update_fields=["language"])
    client = Client(HTTP_HOST="tenant-a.localhost", HTTP_ACCEPT_LANGUAGE="de")
    client.force_login(user)
    page = client.get("/admin/")
    assert page.status_code == 200 and page["Content-Language"] == "en"


def test_tenant_default_language_applies_without_any_preference(tenant: Tenant) -> None:
    tenant.default_language = "en"
    tenant.save(update_fields=["default_language"])
    from tenants.services import _forget_cached_tenants

    _forget_cached_tenants()
    page = Client(HTTP_HOST="tenant-a.localhost").get("/accounts/login/")
    assert page["Content-Language"] == "en"
