from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings

from accounts import roles
from accounts.models import AuditEvent, User
from accounts.services import user_set_roles
from core.tenancy import connection
from tenants.models import Tenant
from tests.factories import PASSWORD, make_user
from tests.helpers import enrol_totp, totp_code


def login(client: Client, username: str, password: str = PASSWORD) -> Any:
    return client.post("/accounts/login/", {"login": username, "password": password})


def test_admin_login_page_goes_through_allauth(client_a: Client, tenant: Tenant) -> None:
    response = client_a.get("/admin/login/?next=/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_editor_without_two_factor_may_use_the_admin(client_a: Client, tenant: Tenant) -> None:
    make_user(roles.EDITOR, username="rita")
    assert login(client_a, "rita").status_code == 302
    assert client_a.get("/admin/").status_code == 200


@pytest.mark.parametrize("role", [roles.ADMIN, roles.APPROVER])
def test_admins_and_approvers_must_enrol_two_factor_before_using_the_admin(
    client_a: Client, tenant: Tenant, role: str
) -> None:
    make_user(role, username="boss")
    login(client_a, "boss")
    response = client_a.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/2fa/totp/activate/")
    assert client_a.get("/admin/accounts/user/").status_code == 302  # every admin page, not only the index
    assert client_a.get(response["Location"]).status_code == 200  # the set-up page itself is reachable


def test_login_with_two_factor_asks_for_the_code(client_a: Client, tenant: Tenant) -> None:
    user = make_user(roles.APPROVER, username="ob")
    secret = enrol_totp(user)
    response = login(client_a, "ob")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/2fa/authenticate/")
    assert client_a.get("/admin/").status_code == 302  # not logged in yet
    wrong = client_a.post(
        "/accounts/2fa/authenticate/", {"code": "000000" if totp_code(secret) != "000000" else "111111"}
    )
    assert wrong.status_code == 200
    right = client_a.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})
    assert right.status_code == 302
    assert client_a.get("/admin/").status_code == 200
    assert AuditEvent.objects.filter(action="auth.login", actor=user).exists()


def test_repeated_failures_lock_the_account_out(client_a: Client, tenant: Tenant) -> None:
    make_user(roles.EDITOR, username="target")
    for _ in range(5):
        assert login(client_a, "target", "wrong-password").status_code == 200
    response = login(client_a, "target")  # the right password no longer helps
    assert response.status_code in (200, 429)
    assert client_a.get("/admin/").status_code == 302
    assert AuditEvent.objects.filter(action="auth.login_failed", actor_label="target").count() >= 5
    other = Client(HTTP_HOST="tenant-a.localhost")
    make_user(roles.EDITOR, username="bystander")
    assert login(other, "bystander").status_code == 302  # other accounts are unaffected


@override_settings(DEMO_MODE=True)
def test_demo_mode_waives_two_factor_only_for_seeded_demo_users(client_a: Client, tenant: Tenant) -> None:
    demo = make_user(roles.APPROVER, username="demo_ob")
    demo.is_demo = True
    demo.save(update_fields=["is_demo"])
    make_user(roles.APPROVER, username="real_ob")
    login(client_a, "demo_ob")
    page = client_a.get("/admin/")
    assert page.status_code == 200
    assert (
        "two-factor authentication is not enforced" in page.content.decode()
        or "nicht erzwungen" in page.content.decode()
    )
    other = Client(HTTP_HOST="tenant-a.localhost")
    login(other, "real_ob")
    assert other.get("/admin/").status_code == 302


def test_production_settings_never_enable_demo_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    monkeypatch.setenv("DEMO_MODE", "1")
    monkeypatch.setenv("SECRET_KEY", "k" * 60)
    monkeypatch.setenv("ALLOWED_HOSTS", "example.org")
    monkeypatch.setenv("FERNET_KEYS", "pGk8eU3l0ay6Vd7pRj0mVxS9j0bZlO8wq3d3ZqkQf1Y=")
    monkeypatch.setenv("DATABASE_URL", "postgres://x@127.0.0.1:1/x")
    monkeypatch.setenv("METRICS_TOKEN", "m" * 32)
    sys.modules.pop("config.settings.production", None)
    production = importlib.import_module("config.settings.production")
    assert production.DEMO_MODE is False
    sys.modules.pop("config.settings.production", None)


def test_role_changes_are_audit_logged(tenant: Tenant) -> None:
    actor = make_user(roles.ADMIN, username="chef")
    user = make_user(roles.EDITOR, username="neu")
    assert user_set_roles(user=user, role_names=[roles.EDITOR, roles.APPROVER], actor=actor)
    event = AuditEvent.objects.get(action="user.roles_changed")
    assert event.actor == actor and event.details == {"before": ["editor"], "after": ["approver", "editor"]}
    assert not user_set_roles(user=user, role_names=[roles.APPROVER, roles.EDITOR], actor=actor)
    assert AuditEvent.objects.filter(action="user.roles_changed").count() == 1


def test_user_of_tenant_a_cannot_log_into_tenant_b(client_b: Client, tenant: Tenant) -> None:
    make_user(roles.EDITOR, username="only_in_a")
    connection.set_schema_to_public()
    response = login(client_b, "only_in_a")
    assert response.status_code == 200  # form re-rendered with an error
    assert client_b.get("/admin/").status_code == 302


def test_session_cookie_of_tenant_a_is_not_valid_on_tenant_b(
    client_a: Client, client_b: Client, tenant: Tenant
) -> None:
    make_user(roles.EDITOR, username="cookie_a")
    login(client_a, "cookie_a")
    assert client_a.get("/admin/").status_code == 200
    client_b.cookies["mnl_session"] = client_a.cookies["mnl_session"].value
    assert client_b.get("/admin/").status_code == 302


def test_tenant_admin_creates_staff_with_roles_through_the_admin(client_a: Client, tenant: Tenant) -> None:
    admin_user = make_user(roles.ADMIN, username="chefin")
    enrol_totp(admin_user)
    client_a.force_login(admin_user)
    response = client_a.post(
        "/admin/accounts/user/add/",
        {
            "username": "neue",
            "email": "neue@example.org",
            "first_name": "Neue",
            "last_name": "Kollegin",
            "language": "",
            "is_active": "on",
            "roles": [roles.EDITOR],
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    user = User.objects.get(username="neue")
    assert user.is_staff and not user.has_usable_password()
    assert list(user.groups.values_list("name", flat=True)) == [roles.EDITOR]
    assert AuditEvent.objects.filter(action="user.created", target_id=str(user.pk), actor=admin_user).exists()


def test_user_list_uses_a_constant_number_of_queries(
    client_a: Client, tenant: Tenant, django_assert_max_num_queries: Any
) -> None:
    admin_user = make_user(roles.ADMIN, username="listchef")
    enrol_totp(admin_user)
    for i in range(15):
        make_user(roles.EDITOR, username=f"editor{i}")
    client_a.force_login(admin_user)
    client_a.get("/admin/accounts/user/")
    with django_assert_max_num_queries(14):
        assert client_a.get("/admin/accounts/user/").status_code == 200


def test_tenant_admin_edits_branding_and_quiet_hours_others_cannot(client_a: Client, tenant: Tenant) -> None:
    admin_user = make_user(roles.ADMIN, username="brand_admin")
    enrol_totp(admin_user)
    client_a.force_login(admin_user)
    page = client_a.get("/admin/settings/")
    assert page.status_code == 200 and 'id="settings-save"' in page.content.decode()
    response = client_a.post(
        "/admin/settings/",
        {
            "name": "Stadt A (neu)",
            "primary_color": "#c8102e",
            "timezone": "Europe/Berlin",
            "default_language": "de",
            "inbox_retention_days": "30",
            "privacy_notice_url": "https://stadt-a.example/datenschutz",
            "quiet_hours_start": "22:00",
            "quiet_hours_end": "07:00",
            "link_tracking": "per_recipient",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    tenant.refresh_from_db()
    assert (tenant.name, tenant.primary_color, str(tenant.quiet_hours_start), tenant.link_tracking) == (
        "Stadt A (neu)",
        "#c8102e",
        "22:00:00",
        "per_recipient",
    )
    assert AuditEvent.objects.filter(action="tenant.settings_changed", actor=admin_user).exists()
    editor = make_user(roles.EDITOR, username="no_branding")
    client_a.force_login(editor)
    assert client_a.get("/admin/settings/").status_code == 403
