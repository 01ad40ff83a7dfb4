"""The staff login speaks to staff formally ("Sie") and invites nobody to sign up (issue 10,
item 6): accounts are created by a tenant's admins."""

from __future__ import annotations

from typing import Any

from django.test import Client

from tenants.models import Tenant


def test_login_page_has_no_sign_up_link_in_either_language(tenant: Tenant) -> None:
    for language in ("de", "en"):
        page = Client(HTTP_HOST="tenant-a.localhost", HTTP_ACCEPT_LANGUAGE=language).get("/accounts/login/")
        html = page.content.decode()
        assert page.status_code == 200 and 'name="password"' in html
        assert "/accounts/signup/" not in html and "Konto bei uns" not in html and "sign up" not in html.lower()


def test_password_pages_say_sie(public: Any) -> None:
    client = Client(HTTP_HOST="localhost", HTTP_ACCEPT_LANGUAGE="de")
    html = client.get("/accounts/password/reset/").content.decode()
    assert "Geben Sie unten Ihre E-Mail-Adresse ein" in html
    assert " deine " not in html and " dir " not in html
