"""The example scripts of docs/api.md, run against a live server with committed data: the
Feinstaubalarm raised by an air-quality system, and Hochbahn's control centre submitting a U3
disruption. Also: seed_demo's demo keys are written where the docs say, and work."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, override_settings

from accounts import roles
from accounts.demo import DEMO_KEYS, seed
from accounts.models import ApiKey
from broadcasts.models import Broadcast
from channels.models import AlarmStateChange
from core.tenancy import connection
from tenants.models import Tenant
from tests.api.support import make_key
from tests.channels.factories import make_channel
from tests.conftest import LiveServer
from tests.factories import make_user

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.fixture
def examples() -> Iterator[Any]:
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield lambda name: importlib.import_module(name)
    finally:
        sys.path.remove(str(EXAMPLES))


def test_the_docs_examples_run_against_a_live_server(
    committed_tenant: Callable[..., Tenant],
    live_server_multitenant: LiveServer,
    examples: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant = committed_tenant()
    connection.set_tenant(tenant)
    alarm = make_channel("Feinstaubalarm", ["FEINSTAUB"], is_alarm=True, slug="feinstaubalarm")
    make_channel("U3", ["U3"], slug="u3")
    _, air_key = make_key(["channels:read", "channels:write"], user=make_user(roles.EDITOR))
    _, control_key = make_key(["channels:read", "broadcasts:read", "broadcasts:write"], user=make_user(roles.EDITOR))
    connection.set_schema_to_public()
    domain = tenant.get_primary_domain().domain
    monkeypatch.setenv("MNL_API", f"http://127.0.0.1:{live_server_multitenant.port}")
    monkeypatch.setenv("MNL_HOST", domain)

    monkeypatch.setenv("MNL_KEY", air_key)
    change = examples("feinstaubalarm").raise_alarm("active", "PM10 über 50 µg/m³ am Neckartor")
    assert (change["from_state"], change["to_state"]) == ("inactive", "active")
    monkeypatch.setenv("MNL_KEY", control_key)
    broadcast = examples("u3_disruption").report_disruption()
    assert broadcast["status"] == "submitted"

    connection.set_tenant(tenant)
    assert AlarmStateChange.objects.get(channel=alarm).note == "PM10 über 50 µg/m³ am Neckartor"
    assert "Barmbek" in Broadcast.objects.get(pk=broadcast["id"]).variants.get().body
    connection.set_schema_to_public()


@pytest.mark.django_db
def test_seed_writes_the_demo_keys_once(tenant: Tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name, username, scopes = DEMO_KEYS["hochbahn"]
    make_user(roles.EDITOR, username=username)
    monkeypatch.setattr(tenant, "schema_name", "hochbahn")
    with override_settings(DEMO_API_KEY_DIR=tmp_path):
        seed(tenant=tenant, stdout=StringIO())
        secret = (tmp_path / "hochbahn.txt").read_text().strip()
        assert (tmp_path / "hochbahn.txt").stat().st_mode & 0o077 == 0
        seed(tenant=tenant, stdout=StringIO())  # idempotent: the same key
        assert (tmp_path / "hochbahn.txt").read_text().strip() == secret
        assert ApiKey.objects.filter(name=name, revoked_at__isnull=True).count() == 1
        (tmp_path / "hochbahn.txt").unlink()
        seed(tenant=tenant, stdout=StringIO())  # the file is gone: a new key, the old one revoked
        assert ApiKey.objects.filter(name=name, revoked_at__isnull=True).count() == 1
        assert ApiKey.objects.filter(name=name).count() == 2
    client = Client(HTTP_HOST="tenant-a.localhost", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/channels/").status_code == 401  # the first key was revoked
    fresh = (tmp_path / "hochbahn.txt").read_text().strip()
    key = ApiKey.objects.get(name=name, revoked_at__isnull=True)
    assert key.user.username == username and key.scopes == sorted(scopes)
    assert (
        Client(HTTP_HOST="tenant-a.localhost", HTTP_AUTHORIZATION=f"Bearer {fresh}")
        .get("/api/v1/broadcasts/")
        .status_code
        == 200
    )
