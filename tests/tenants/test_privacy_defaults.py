"""Privacy by default: new tenants count clicks per link only; per-person tracking is the
tenant's explicit choice, with a note on consent next to it. Existing tenants keep theirs."""

from __future__ import annotations

from io import StringIO
from typing import Any

from django.core.management import call_command
from django.test import Client

from accounts import roles
from tenants.models import Tenant
from tenants.services import tenant_onboard
from tests.factories import make_user
from tests.helpers import enrol_totp


def test_a_new_tenant_tracks_links_in_aggregate_only(public: Any) -> None:
    result = tenant_onboard(
        schema_name="bochum", name="Stadt Bochum", domain="bochum.localhost", admin_email="admin@bochum.example"
    )
    assert result.tenant.link_tracking == Tenant.LinkTracking.AGGREGATE
    result.tenant.refresh_from_db()
    assert result.tenant.link_tracking == Tenant.LinkTracking.AGGREGATE


def test_the_new_default_leaves_existing_tenants_alone(public: Any) -> None:
    # only the model default changes: PostgreSQL sees no statement, so no row is rewritten
    out = StringIO()
    call_command("sqlmigrate", "tenants", "0004", stdout=out)
    sql = "\n".join(line for line in out.getvalue().splitlines() if not line.startswith("--")).strip()
    assert sql in {"", "BEGIN;\nCOMMIT;"}, sql


def test_the_settings_page_explains_consent_next_to_the_choice(tenant: Tenant) -> None:
    admin = make_user(roles.ADMIN, username="privacy_admin")
    enrol_totp(admin)
    for language, note in [
        ("en", "Choose it only if your privacy notice says so and your subscribers have consented to it"),
        ("de", "Wählen Sie das nur, wenn Ihre Datenschutzerklärung es nennt und die Abonnierenden eingewilligt"),
    ]:
        client = Client(HTTP_HOST="tenant-a.localhost", HTTP_ACCEPT_LANGUAGE=language)
        client.force_login(admin)
        html = client.get("/admin/settings/").content.decode()
        assert note in html
        assert '<option value="aggregate" selected>' in html
