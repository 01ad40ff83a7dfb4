"""API keys: authentication, scopes, roles, expiry and revocation, rate limits, the admin that
creates them (shown once, stored hashed) and the audit log."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts import roles
from accounts.models import ApiKey, AuditEvent
from accounts.services import api_key_revoke
from core.tenancy import connection
from tenants.models import Tenant
from tests.api.support import DOMAIN_A, DOMAIN_B, api_client, assert_error, make_key
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.helpers import signed_in_admin

pytestmark = pytest.mark.django_db


def test_a_valid_key_reads_channels(tenant: Tenant) -> None:
    make_channel()
    key, secret = make_key(["channels:read"])
    response = api_client(secret).get("/api/v1/channels/")
    assert response.status_code == 200, response.content
    assert [row["name"] for row in response.json()["results"]] == ["Feinstaubalarm"]
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_the_key_is_stored_hashed_with_a_visible_prefix(tenant: Tenant) -> None:
    key, secret = make_key()
    assert secret.startswith(key.prefix + "_")
    assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(ApiKey.objects.filter(pk=key.pk).values().get())


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer mnl_0000_nothing", "Bearer not-a-key", "Basic dXNlcjpwYXNz", "Bearer a b"],
)
def test_without_a_valid_key_401(tenant: Tenant, header: str) -> None:
    client = Client(HTTP_HOST=DOMAIN_A, HTTP_ACCEPT_LANGUAGE="en")
    response = client.get("/api/v1/channels/", HTTP_AUTHORIZATION=header) if header else client.get("/api/v1/channels/")
    assert_error(response, 401)


def test_a_wrong_secret_with_a_real_prefix_is_401(tenant: Tenant) -> None:
    key, secret = make_key()
    assert_error(api_client(f"{key.prefix}_{'x' * 43}").get("/api/v1/channels/"), 401)


def test_expired_and_revoked_keys_are_401(tenant: Tenant) -> None:
    _, expired = make_key(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(api_client(expired).get("/api/v1/channels/"), 401, "authentication_failed")
    key, revoked = make_key()
    assert api_client(revoked).get("/api/v1/channels/").status_code == 200
    assert api_key_revoke(key=key, actor=key.user) is True
    assert_error(api_client(revoked).get("/api/v1/channels/"), 401, "authentication_failed")
    assert api_key_revoke(key=key, actor=key.user) is False


def test_a_key_of_a_deactivated_user_is_401(tenant: Tenant) -> None:
    key, secret = make_key()
    key.user.is_active = False
    key.user.save(update_fields=["is_active"])
    assert_error(api_client(secret).get("/api/v1/channels/"), 401)


def test_a_key_without_the_scope_is_403(tenant: Tenant) -> None:
    channel = make_channel(is_alarm=True)
    _, secret = make_key(["channels:read"])
    error = assert_error(
        api_client(secret).post(
            f"/api/v1/channels/{channel.pk}/alarm-state/", {"state": "active"}, content_type="application/json"
        ),
        403,
        "permission_denied",
    )
    assert "channels:write" in error["message"]


def test_the_roles_of_the_keys_user_still_apply(tenant: Tenant) -> None:
    """An inbox agent's key may read channels but not raise an alarm, whatever its scopes."""
    channel = make_channel(is_alarm=True)
    _, secret = make_key(role=roles.INBOX_AGENT)
    assert api_client(secret).get("/api/v1/channels/").status_code == 200
    assert_error(
        api_client(secret).post(
            f"/api/v1/channels/{channel.pk}/alarm-state/", {"state": "active"}, content_type="application/json"
        ),
        403,
    )


def test_tenant_isolation(tenant: Tenant, tenant_b: Tenant) -> None:
    """A's key is unknown on B's domain (401); B's ids through A's domain are 404."""
    _, secret_a = make_key()
    with in_tenant(tenant_b):
        channel_b = make_channel("Verkehr B", ["VERKEHRB"])
    assert_error(api_client(secret_a, domain=DOMAIN_B).get("/api/v1/channels/"), 401)
    assert_error(api_client(secret_a).get(f"/api/v1/channels/{channel_b.pk + 100000}/"), 404, "not_found")
    connection.set_tenant(tenant)
    own = make_channel()
    assert api_client(secret_a).get(f"/api/v1/channels/{own.pk}/").status_code == 200
    with in_tenant(tenant_b):
        other = make_channel("Nur B", ["NURB"])
    if other.pk != own.pk:
        assert_error(api_client(secret_a).get(f"/api/v1/channels/{other.pk}/"), 404)


def test_throttling_per_key(tenant: Tenant) -> None:
    _, slow = make_key(rate_limit=2)
    _, other = make_key(rate_limit=2)
    client = api_client(slow)
    assert [client.get("/api/v1/channels/").status_code for _ in range(2)] == [200, 200]
    response = client.get("/api/v1/channels/")
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert api_client(other).get("/api/v1/channels/").status_code == 200  # each key counts alone


def test_session_auth_needs_csrf(tenant: Tenant) -> None:
    channel = make_channel(is_alarm=True)
    client = signed_in_admin(Client(HTTP_HOST=DOMAIN_A, HTTP_ACCEPT_LANGUAGE="en", enforce_csrf_checks=True))
    assert client.get("/api/v1/channels/").status_code == 200
    url = f"/api/v1/channels/{channel.pk}/alarm-state/"
    assert_error(client.post(url, {"state": "active"}, content_type="application/json"), 403)
    client.get("/admin/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post(url, {"state": "active"}, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201, response.content


def test_session_of_an_admin_without_two_factor_is_refused(tenant: Tenant) -> None:
    from tests.factories import make_user

    client = Client(HTTP_HOST=DOMAIN_A, HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(make_user(roles.ADMIN))
    assert_error(client.get("/api/v1/channels/"), 403)


def test_admin_creates_a_key_shown_once_and_audited(tenant: Tenant) -> None:
    client = signed_in_admin(Client(HTTP_HOST=DOMAIN_A, HTTP_ACCEPT_LANGUAGE="en"))
    response = client.post(
        "/admin/accounts/apikey/add/",
        {"name": "Leitstelle", "scopes": ["broadcasts:write", "channels:read"], "rate_limit": 60, "expires_at": ""},
    )
    assert response.status_code == 200, response.content
    key = ApiKey.objects.get(name="Leitstelle")
    page = response.content.decode()
    secret = page.split('id="api-key-secret" type="text" readonly size="70" value="')[1].split('"')[0]
    assert secret.startswith(key.prefix) and key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert "no-store" in response["Cache-Control"]
    assert key.scopes == ["broadcasts:write", "channels:read"]
    assert AuditEvent.objects.filter(action="api_key.created", target_id=str(key.pk)).exists()
    listing = client.get("/admin/accounts/apikey/").content.decode()
    assert key.prefix in listing and secret not in listing
    assert secret not in client.get(f"/admin/accounts/apikey/{key.pk}/change/").content.decode()
    client.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert AuditEvent.objects.filter(action="api_key.revoked", target_id=str(key.pk)).exists()


def test_only_admins_manage_keys(tenant: Tenant) -> None:
    from tests.factories import make_user

    client = Client(HTTP_HOST=DOMAIN_A, HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(make_user(roles.EDITOR))
    assert client.get("/admin/accounts/apikey/add/").status_code == 403


def _error_of(response: Any) -> dict[str, Any]:
    return response.json()["error"]


def test_messages_in_german_and_english(tenant: Tenant) -> None:
    channel = make_channel(name="Verkehr", keywords=["VERKEHR"])
    _, secret = make_key()
    url = f"/api/v1/channels/{channel.pk}/alarm-state/"
    english = api_client(secret).post(url, {"state": "active"}, content_type="application/json")
    german = api_client(secret, language="de").post(url, {"state": "active"}, content_type="application/json")
    assert _error_of(english) == {
        "code": "rejected",
        "message": "“Verkehr” is not an alarm channel; only alarm channels have a state.",
    }
    assert _error_of(german)["message"] == "„Verkehr“ ist kein Alarmkanal; nur Alarmkanäle haben einen Zustand."
    anonymous = Client(HTTP_HOST=DOMAIN_A, HTTP_ACCEPT_LANGUAGE="de").get("/api/v1/channels/")
    assert _error_of(anonymous)["message"] == "Anmeldedaten fehlen."
    invalid = api_client(secret, language="de").post(url, {"state": "bogus"}, content_type="application/json")
    error = assert_error(invalid, 400, "invalid")
    assert "gültig" in error["fields"]["state"][0] and error["message"].startswith("Die Anfrage ist ungültig")
