"""Subscribers through the API: add with consent (ledger entry), look up by address, erase, and
the file import with its per-row report; isolation between tenants."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts import roles
from subscribers.models import ConsentEvent, Subscriber
from tenants.models import Tenant
from tests.api.support import DOMAIN_B, api_client, assert_error, make_key
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.subscribers.import_helpers import CSV_HEADER, import_channel

pytestmark = pytest.mark.django_db


def _person(channel_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "sandbox", "address": "0170 1234567", "channels": [channel_id], "name": "Erika",
        "consent_at": "2026-09-12T14:30:00+02:00", "consent_evidence": "Formular Stand Schlossplatz", **extra,
    }  # fmt: skip


def test_create_with_consent_lookup_and_erase(tenant: Tenant) -> None:
    channel = make_channel()
    _, secret = make_key(["subscribers:write", "subscribers:read"])
    client = api_client(secret)
    response = client.post("/api/v1/subscribers/create/", _person(channel.pk), content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["channels"] == [channel.pk] and body["addresses"] == [
        {"provider": "sandbox", "address": "+491701234567"}
    ]
    event = ConsentEvent.objects.get(subscriber_id=body["id"], channel=channel)
    assert (event.kind, event.source, event.evidence) == ("opt_in", "api", "Formular Stand Schlossplatz")
    # the same address again adds nobody
    again = client.post("/api/v1/subscribers/create/", _person(channel.pk), content_type="application/json")
    assert again.json()["id"] == body["id"] and Subscriber.objects.count() == 1
    found = client.get("/api/v1/subscribers/lookup/", {"address": "+49 170 1234567"})
    assert found.status_code == 200 and found.json()["id"] == body["id"]
    assert_error(client.get("/api/v1/subscribers/lookup/", {"address": "+49 170 7654321"}), 404)
    assert_error(client.get("/api/v1/subscribers/lookup/"), 404)
    erased = client.post(f"/api/v1/subscribers/{body['id']}/erase/", content_type="application/json")
    assert erased.status_code == 200 and erased.json()["subscriptions_ended"] == 1
    assert Subscriber.objects.get(pk=body["id"]).status == "erased"
    assert_error(client.get("/api/v1/subscribers/lookup/", {"address": "+49 170 1234567"}), 404)


def test_invalid_input_and_roles(tenant: Tenant) -> None:
    channel = make_channel()
    _, secret = make_key(["subscribers:write"])
    client = api_client(secret)
    bad = client.post(
        "/api/v1/subscribers/create/", _person(channel.pk, address="nonsense"), content_type="application/json"
    )
    assert_error(bad, 400, "rejected")
    missing = client.post("/api/v1/subscribers/create/", {"provider": "sms"}, content_type="application/json")
    assert set(assert_error(missing, 400, "invalid")["fields"]) >= {"address", "channels", "consent_at"}
    # an editor may not erase (admins only, as in the admin)
    _, editor = make_key(["subscribers:write"], role=roles.EDITOR)
    assert_error(api_client(editor).post("/api/v1/subscribers/1/erase/", content_type="application/json"), 403)


def test_isolation(tenant: Tenant, tenant_b: Tenant) -> None:
    channel = make_channel()
    _, secret = make_key(["subscribers:write", "subscribers:read"])
    with in_tenant(tenant_b):
        _, secret_b = make_key(["subscribers:write", "subscribers:read"])
        channel_b = make_channel("B", ["BEE"])
        person_b = api_client(secret_b, domain=DOMAIN_B).post(
            "/api/v1/subscribers/create/", _person(channel_b.pk), content_type="application/json"
        )
        assert person_b.status_code == 201, person_b.content
    assert_error(api_client(secret).get("/api/v1/subscribers/lookup/", {"address": "+491701234567"}), 404)
    api_client(secret).post("/api/v1/subscribers/create/", _person(channel.pk), content_type="application/json")
    assert_error(api_client(secret, domain=DOMAIN_B).get("/api/v1/subscribers/lookup/", {"address": "x"}), 401)


def test_import_with_per_row_report(tenant: Tenant, django_capture_on_commit_callbacks: Any) -> None:
    import_channel()
    _, secret = make_key(["subscribers:write"])
    csv = CSV_HEADER + "Anna,anna@example.org,feinstaub,Liste,2024-01-01\nBert,kaputt,feinstaub,Liste,2024-01-01\n"
    upload = SimpleUploadedFile("liste.csv", csv.encode(), content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(secret).post("/api/v1/subscribers/imports/", {"file": upload})
    assert response.status_code == 201, response.content
    job = api_client(secret).get(f"/api/v1/subscribers/imports/{response.json()['id']}/").json()
    assert job["status"] == "done" and job["subscribers_created"] == 1 and job["rows_rejected"] == 1
    assert [error["row"] for error in job["errors"]] == [3]
    empty = api_client(secret).post(
        "/api/v1/subscribers/imports/", {"file": SimpleUploadedFile("leer.csv", b"", content_type="text/csv")}
    )
    assert_error(empty, 400)
    assert_error(
        api_client(secret).post("/api/v1/subscribers/imports/", {"x": "y"}, content_type="application/json"), 415
    )
