from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings
from django.utils import translation
from django_tenants.utils import schema_context, schema_exists, tenant_context

from accounts import roles
from accounts.models import AuditEvent, User
from core.errors import ApplicationError
from core.tenancy import connection
from inbox.models import CannedReply, Conversation, Department, Entry
from messengers.models import Connection
from subscribers.selectors import channel_offers
from tenants.models import Domain, Tenant
from tenants.services import tenant_onboard


def onboard(**overrides: Any) -> Any:
    params = {
        "schema_name": "bochum",
        "name": "Stadt Bochum",
        "domain": "bochum.localhost",
        "admin_email": "admin@bochum.example",
    }
    return tenant_onboard(**{**params, **overrides})


def test_onboarding_creates_schema_domain_roles_admin_and_audit(public: Any) -> None:
    steps: list[str] = []
    with translation.override("en"):  # step names are translated; this test reads the English ones
        result = onboard(progress=steps.append)
    tenant = result.tenant
    assert schema_exists("bochum")
    assert Domain.objects.get(domain="bochum.localhost", is_primary=True).tenant == tenant
    assert steps[0] == "check input" and "first administrator" in steps
    assert result.seconds > 0 and [name for name, _ in result.steps] == steps
    with schema_context("bochum"):
        assert set(Group.objects.values_list("name", flat=True)) >= set(roles.ROLES)
        admin = User.objects.get(email="admin@bochum.example")
        assert admin.is_staff and not admin.has_usable_password()
        assert list(admin.groups.values_list("name", flat=True)) == [roles.ADMIN]
        assert AuditEvent.objects.filter(action="tenant.onboarded").exists()
    connection.set_schema_to_public()
    assert AuditEvent.objects.filter(action="tenant.onboarded", target_id=str(tenant.pk)).exists()
    assert "/accounts/password/reset/key/" in result.password_link
    assert result.password_link.startswith("http://bochum.localhost:8000/")


def test_the_password_link_works_once_and_leads_into_the_tenant(public: Any) -> None:
    result = onboard()
    client = Client(HTTP_HOST="bochum.localhost")
    path = re.sub(r"^https?://[^/]+", "", result.password_link)
    response = client.get(path, follow=True)
    assert response.status_code == 200
    form_url = response.redirect_chain[-1][0] if response.redirect_chain else path
    response = client.post(
        form_url, {"password1": "Ein-sicheres-Passwort-2026", "password2": "Ein-sicheres-Passwort-2026"}
    )
    assert response.status_code == 302
    with schema_context("bochum"):
        assert User.objects.get(email="admin@bochum.example").check_password("Ein-sicheres-Passwort-2026")
    again = client.get(path, follow=True)
    assert b"password1" not in again.content  # the token is spent once the password is set


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"schema_name": "Bochum!"}, "short name must start with a letter"),
        ({"schema_name": "public"}, "reserved"),
        ({"schema_name": "test_a"}, "already exists"),
        ({"domain": "tenant-a.localhost"}, "already belongs"),
        ({"domain": "not a domain"}, "not a valid domain"),
        ({"admin_email": "nobody"}, "not a valid e-mail"),
    ],
)
def test_invalid_input_is_refused_and_nothing_is_created(public: Any, overrides: dict[str, str], message: str) -> None:
    tenants_before = Tenant.objects.count()
    with pytest.raises(ApplicationError, match=message):
        onboard(**overrides)
    assert Tenant.objects.count() == tenants_before
    assert not schema_exists("bochum")


def test_onboarding_refuses_to_run_inside_a_tenant(tenant: Tenant) -> None:
    with pytest.raises(ApplicationError, match="operator"):
        onboard()


def test_command_prints_progress_and_the_link(public: Any) -> None:
    out = StringIO()
    with translation.override("en"):  # the steps are named in the active language
        call_command(
            "onboard_tenant",
            "--schema",
            "bochum",
            "--name",
            "Stadt Bochum",
            "--domain",
            "bochum.localhost",
            "--admin-email",
            "admin@bochum.example",
            stdout=out,
        )
    text = out.getvalue()
    assert "… create the database schema" in text and "✓ first administrator" in text
    assert re.search(r"Ready in \d+\.\d\ds: Stadt Bochum", text)
    assert "set password: http://bochum.localhost:8000/accounts/password/reset/key/" in text
    assert "admin user:   admin <admin@bochum.example>" in text
    assert "log in at:    http://bochum.localhost:8000/admin/\n" in text
    assert mail.outbox and mail.outbox[-1].to == ["admin@bochum.example"]


def test_command_reports_errors_without_a_traceback(public: Any) -> None:
    with pytest.raises(CommandError, match="already exists"):
        call_command(
            "onboard_tenant",
            "--schema",
            "test_a",
            "--name",
            "X",
            "--domain",
            "x.localhost",
            "--admin-email",
            "a@x.example",
            stdout=StringIO(),
        )


def test_seed_demo_creates_the_three_tenants_and_is_idempotent(public: Any) -> None:
    first = StringIO()
    call_command("seed_demo", stdout=first)
    assert "stuttgart: onboarded in" in first.getvalue()
    assert "stuttgart: demo history with 900 new subscriber(s), 12 sent broadcast(s)" in first.getvalue()
    tenants = {t.schema_name: t for t in Tenant.objects.exclude(schema_name="public")}
    assert {"stuttgart", "hochbahn", "spd"} <= set(tenants)
    stuttgart = tenants["stuttgart"]
    assert stuttgart.privacy_notice_url == "https://stuttgart.example/datenschutz"  # the subscribe page needs one
    assert tenants["spd"].kind == Tenant.Kind.PARTY
    with schema_context("stuttgart"):
        assert set(User.objects.filter(is_demo=True).values_list("username", flat=True)) >= {
            "admin", "redaktion", "oberbuergermeister", "buergerbuero"
        }  # fmt: skip
        users = User.objects.count()
        # the inbox: questions, a complaint with a note for the department, a thank-you
        # (the closed ones are analytics.demo's 90 days of history)
        conversations = dict(
            Conversation.objects.exclude(status="closed").values_list("contact__display_name", "preview")
        )
        conversation_count = Conversation.objects.count()
        assert conversations["Aylin Kaya"].startswith("In der Hauptstätter Straße")
        assert len(conversations) == 4 and Department.objects.count() == 2 and CannedReply.objects.exists()
        assert Entry.objects.filter(kind="note", conversation__contact__display_name="Aylin Kaya").exists()
    for schema in ("stuttgart", "hochbahn", "spd"):
        with tenant_context(tenants[schema]), override_settings(DEMO_MODE=True):
            looks = dict(Connection.objects.filter(provider="sandbox").values_list("demo_presents_as", "name"))
            assert looks == {"": "Sandbox", "whatsapp": "WhatsApp (Demo)", "telegram": "Telegram (Demo)",
                             "email": "E-Mail (Demo)"}  # fmt: skip
            offers = channel_offers()
            assert offers and all(o.email_demo for o in offers)  # the e-mail form, to the simulator
            for offer in offers:
                shown = {(m.provider, m.demo, m.has_qr) for m in offer.messengers}
                assert {("whatsapp", True, True), ("telegram", True, True), ("sandbox", False, False)} == shown
    assert User.objects.filter(username="operator", is_superuser=True).exists()

    Tenant.objects.filter(pk=stuttgart.pk).update(privacy_notice_url="https://www.stuttgart.de/datenschutz")
    again = StringIO()
    call_command("seed_demo", stdout=again)
    assert "onboarded" not in again.getvalue()
    assert "0 demo subscriber(s) created" in again.getvalue()
    assert "stuttgart: demo history with 0 new subscriber(s), 0 sent broadcast(s)" in again.getvalue()
    with schema_context("stuttgart"):
        assert User.objects.count() == users
        assert Connection.objects.filter(provider="sandbox").count() == 4
        assert Conversation.objects.count() == conversation_count
    # an operator's own setting is kept
    assert Tenant.objects.get(pk=stuttgart.pk).privacy_notice_url == "https://www.stuttgart.de/datenschutz"
