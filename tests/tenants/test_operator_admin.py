from __future__ import annotations

from typing import Any

from django.test import Client
from django_tenants.utils import schema_context, schema_exists

from accounts.models import User
from core.tasks import run_in_schema
from core.tenancy import connection
from tenants.models import Tenant
from tests.helpers import enrol_totp


def operator(username: str = "op") -> User:
    connection.set_schema_to_public()
    user = User.objects.create_superuser(username=username, email=f"{username}@platform.example", password="x" * 12)
    enrol_totp(user)
    return user


def test_operator_onboards_a_tenant_through_the_form(public: Any, client_public: Client) -> None:
    client_public.force_login(operator())
    page = client_public.get("/admin/tenants/tenant/onboard/")
    assert page.status_code == 200 and b"Onboard" in page.content
    response = client_public.post(
        "/admin/tenants/tenant/onboard/",
        {
            "name": "Stadt Bochum",
            "schema_name": "bochum",
            "domain": "bochum.localhost",
            "kind": "municipality",
            "admin_email": "admin@bochum.example",
            "timezone": "Europe/Berlin",
            "language": "de",
        },
    )
    assert response.status_code == 200
    assert b"password-link" in response.content and b"bochum.localhost" in response.content
    html = response.content.decode()
    assert "Log in at:" in html and 'href="http://bochum.localhost:8000/admin/"' in html
    assert '<strong id="tenant-admin-username">admin</strong>' in html
    connection.set_schema_to_public()
    assert Tenant.objects.filter(schema_name="bochum").exists() and schema_exists("bochum")


def test_onboarding_form_shows_service_errors(public: Any, client_public: Client) -> None:
    client_public.force_login(operator())
    response = client_public.post(
        "/admin/tenants/tenant/onboard/",
        {
            "name": "Doppelt",
            "schema_name": "test_a",
            "domain": "neu.localhost",
            "kind": "city",
            "admin_email": "a@neu.example",
            "timezone": "Europe/Berlin",
            "language": "de",
        },
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()


def test_tenant_list_uses_a_constant_number_of_queries(
    public: Any, client_public: Client, django_assert_num_queries: Any
) -> None:
    from django.db import connection as conn
    from django.test.utils import CaptureQueriesContext

    client_public.force_login(operator())
    client_public.get("/admin/tenants/tenant/")
    with CaptureQueriesContext(conn) as few:
        assert client_public.get("/admin/tenants/tenant/").status_code == 200
    for i in range(5):
        extra = Tenant(schema_name=f"extra{i}", name=f"Extra {i}")
        extra.auto_create_schema = False  # rows are enough for a list page
        extra.save()
    with django_assert_num_queries(len(few)):
        assert client_public.get("/admin/tenants/tenant/").status_code == 200


def test_tenant_staff_cannot_use_the_operator_admin(public: Any, client_public: Client, tenant_a: Tenant) -> None:
    client = Client(HTTP_HOST="tenant-a.localhost")
    with schema_context(tenant_a.schema_name):
        staff = User.objects.get(username="admin")
        # The same user id may exist in public, but a tenant's session is not valid there.
        client.force_login(staff)
    cookie = client.cookies["mnl_session"].value
    client_public.cookies["mnl_session"] = cookie
    response = client_public.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/accounts/login/")


def test_suspended_tenant_shows_a_notice_and_its_tasks_are_skipped(
    public: Any, client_public: Client, tenant_a: Tenant
) -> None:
    client_public.force_login(operator())
    response = client_public.post(f"/admin/tenants/tenant/{tenant_a.pk}/suspend/", {"reason": "Vertrag beendet"})
    assert response.status_code == 302
    connection.set_schema_to_public()
    tenant_a.refresh_from_db()
    assert tenant_a.status == Tenant.Status.SUSPENDED
    page = Client(HTTP_HOST="tenant-a.localhost").get("/admin/")
    assert page.status_code == 503
    assert "Vertrag beendet" in page.content.decode()
    assert run_in_schema(tenant_a.schema_name, "tests.core.tasks_probe.record_schema", {"marker": "m"}) == {
        "skipped": "suspended"
    }
    connection.set_schema_to_public()
    client_public.post(f"/admin/tenants/tenant/{tenant_a.pk}/reactivate/")
    connection.set_schema_to_public()
    tenant_a.refresh_from_db()
    assert tenant_a.is_active
    assert Client(HTTP_HOST="tenant-a.localhost").get("/admin/").status_code == 302  # login again


def test_suspension_needs_a_reason(public: Any, client_public: Client, tenant_a: Tenant) -> None:
    client_public.force_login(operator())
    response = client_public.post(f"/admin/tenants/tenant/{tenant_a.pk}/suspend/", {"reason": ""})
    assert response.status_code == 200
    connection.set_schema_to_public()
    assert Tenant.objects.get(pk=tenant_a.pk).is_active
