"""The inbox through the API: list (filters, cursor, query count), thread, reply, assign, close;
isolation between tenants."""

from __future__ import annotations

from typing import Any

import pytest

from accounts import roles
from inbox.models import Conversation
from messengers import services as messenger_services
from messengers.models import Connection, OutboundMessage
from tenants.models import Tenant
from tests.api.support import api_client, assert_error, make_key
from tests.factories import make_user
from tests.messengers.support import apply_all

pytestmark = pytest.mark.django_db


def _ask(name: str, text: str) -> Conversation:
    sandbox = Connection.objects.get(provider="sandbox")
    person = messenger_services.sandbox_person_create(connection=sandbox, name=name)
    messenger_services.sandbox_receive(connection=sandbox, address=person.address, text=text)
    apply_all()
    return Conversation.objects.get(contact=person)


def test_list_thread_reply_assign_close(tenant: Tenant, django_capture_on_commit_callbacks: Any) -> None:
    anna = _ask("Anna", "Gilt der Feinstaubalarm morgen noch?")
    _ask("Bert", "Fährt die U3?")
    agent = make_user(roles.INBOX_AGENT, username="kundendialog")
    _, secret = make_key(["inbox:read", "inbox:write"], role=roles.INBOX_AGENT)
    client = api_client(secret)
    listing = client.get("/api/v1/inbox/conversations/")
    assert listing.status_code == 200, listing.content
    assert {row["preview"] for row in listing.json()["results"]} == {
        "Gilt der Feinstaubalarm morgen noch?",
        "Fährt die U3?",
    }
    found = client.get("/api/v1/inbox/conversations/", {"q": "Feinstaubalarm"}).json()["results"]
    assert [row["id"] for row in found] == [anna.pk]
    assert_error(client.get("/api/v1/inbox/conversations/", {"status": "bogus"}), 400, "invalid")
    thread = client.get(f"/api/v1/inbox/conversations/{anna.pk}/").json()
    assert [entry["text"] for entry in thread["entries"]] == ["Gilt der Feinstaubalarm morgen noch?"]
    with django_capture_on_commit_callbacks(execute=True):
        reply = client.post(
            f"/api/v1/inbox/conversations/{anna.pk}/reply/",
            {"text": "Ja, bis Freitag."},
            content_type="application/json",
        )
    assert reply.status_code == 201, reply.content
    assert OutboundMessage.objects.filter(text="Ja, bis Freitag.").exists()
    assigned = client.post(
        f"/api/v1/inbox/conversations/{anna.pk}/assign/", {"assignee": agent.username}, content_type="application/json"
    )
    assert assigned.status_code == 200 and assigned.json()["assignee"] == agent.username
    assert_error(
        client.post(
            f"/api/v1/inbox/conversations/{anna.pk}/assign/", {"assignee": "nobody"}, content_type="application/json"
        ),
        404,
    )
    closed = client.post(f"/api/v1/inbox/conversations/{anna.pk}/close/", content_type="application/json")
    assert closed.json()["status"] == "closed"
    assert [r["id"] for r in client.get("/api/v1/inbox/conversations/", {"status": "closed"}).json()["results"]] == [
        anna.pk
    ]


def test_read_scope_cannot_write_and_other_roles_cannot_read(tenant: Tenant) -> None:
    anna = _ask("Anna", "Frage")
    _, reader = make_key(["inbox:read"], role=roles.INBOX_AGENT)
    assert_error(
        api_client(reader).post(f"/api/v1/inbox/conversations/{anna.pk}/close/", content_type="application/json"), 403
    )
    _, approver = make_key(["inbox:read"], role=roles.APPROVER)
    assert_error(api_client(approver).get("/api/v1/inbox/conversations/"), 403)


def test_isolation_and_query_count(tenant: Tenant, tenant_b: Tenant, django_assert_max_num_queries: Any) -> None:
    from tests.conftest import in_tenant

    for index in range(8):
        _ask(f"P{index}", f"Frage {index}")
    _, secret = make_key(["inbox:read"])
    with django_assert_max_num_queries(12):
        response = api_client(secret).get("/api/v1/inbox/conversations/")
    assert len(response.json()["results"]) == 8
    with in_tenant(tenant_b):
        other = _ask("B", "Frage in B")
    assert_error(api_client(secret).get(f"/api/v1/inbox/conversations/{other.pk + 100000}/"), 404)
    assert_error(api_client(secret, domain="tenant-b.localhost").get("/api/v1/inbox/conversations/"), 401)
