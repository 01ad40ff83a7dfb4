"""The phone simulator in the tenant admin: create a simulated person, write as them (the same
pipeline as a real webhook: WebhookEvent → InboundMessage), see our messages as bubbles, and
report them `read` like a provider would."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings

from accounts import roles
from messengers import services
from messengers.adapters.base import Button
from messengers.models import Connection, Contact, InboundMessage, OutboundMessage, SandboxMessage, WebhookEvent
from tenants.models import Tenant
from tests.factories import make_user
from tests.messengers.support import apply_all

pytestmark = pytest.mark.usefixtures("tenant")

SEEN: list[tuple[str, str]] = []


def note(*, message: InboundMessage, event: Any) -> str | None:
    SEEN.append((message.kind, message.text))
    return None


@pytest.fixture
def editor(client_a: Client, tenant: Tenant) -> Client:
    SEEN.clear()
    client_a.force_login(make_user(roles.EDITOR, username="simulant"))
    return client_a


@pytest.fixture
def sandbox() -> Connection:
    return Connection.objects.get(provider="sandbox")


def phones(sandbox: Connection) -> str:
    return f"/admin/messengers/connection/{sandbox.pk}/phones/"


@override_settings(MESSENGER_INBOUND_HANDLERS=[f"{__name__}.note"])
def test_a_simulated_person_writes_and_reads(
    editor: Client, sandbox: Connection, django_capture_on_commit_callbacks: Any
) -> None:
    start = editor.get("/admin/messengers/connection/sandbox/")
    assert start.status_code == 302 and start["Location"] == phones(sandbox)
    assert "No simulated people yet." in editor.get(phones(sandbox)).content.decode()
    created = editor.post(phones(sandbox), {"name": "Erika Muster"})
    person = Contact.objects.get(connection=sandbox, display_name="Erika Muster")
    assert created.status_code == 302 and created["Location"] == f"{phones(sandbox)}{person.pk}/"
    assert person.address.startswith("+49155")
    page = editor.get(f"{phones(sandbox)}{person.pk}/").content.decode()
    assert f"{phones(sandbox)}{person.pk}/messages.json" in page and person.address in page

    # the person writes: a bubble, a stored webhook event, then an InboundMessage
    sent = editor.post(f"{phones(sandbox)}{person.pk}/send/", {"text": "START"})
    assert sent.status_code == 302
    tap = editor.post(
        f"{phones(sandbox)}{person.pk}/send/", {"text": "Ja", "payload": "sub:traffic"}, HTTP_X_REQUESTED_WITH="fetch"
    )
    assert tap.json() == {"ok": True}
    assert list(SandboxMessage.objects.values_list("direction", "text")) == [("in", "START"), ("in", "Ja")]
    assert WebhookEvent.objects.filter(connection=sandbox, kind="inbound").count() == 2
    apply_all()
    rows = {m.kind: m for m in InboundMessage.objects.filter(connection=sandbox)}
    assert (rows["text"].text, rows["button"].payload) == ("START", {"payload": "sub:traffic"})
    assert sorted(SEEN) == [("button", "Ja"), ("text", "START")]
    person.refresh_from_db()
    assert person.last_inbound_at is not None

    # we answer: the bubble appears on the phone
    contact = Contact.objects.get(pk=person.pk)
    with django_capture_on_commit_callbacks(execute=True):
        reply = services.message_queue(
            connection=sandbox,
            to=person.address,
            contact=contact,
            text="Willkommen!",
            buttons=[Button(title="Abmelden", payload="STOP")],
        )
    apply_all()
    reply.refresh_from_db()
    assert reply.status == "delivered"
    listing = editor.get(f"{phones(sandbox)}{person.pk}/messages.json").json()
    assert listing["status"] == "active"
    assert [(b["direction"], b["text"], b["read"]) for b in listing["messages"]] == [
        ("in", "START", False),
        ("in", "Ja", False),
        ("out", "Willkommen!", False),  # shown now; reported read by this very request
    ]
    assert listing["messages"][2]["buttons"] == [{"title": "Abmelden", "url": "", "payload": "STOP"}]
    # showing the bubble stored a `read` status like a provider's webhook, and it is applied
    (read_event,) = WebhookEvent.objects.filter(connection=sandbox, kind="status", payload__status="read")
    assert read_event.payload["provider_message_id"] == reply.provider_message_id
    apply_all()
    reply.refresh_from_db()
    assert reply.status == "read" and reply.read_at is not None
    again = editor.get(f"{phones(sandbox)}{person.pk}/messages.json").json()
    assert again["messages"][2]["read"] is True
    assert WebhookEvent.objects.filter(payload__status="read").count() == 1  # nothing new to report
    newer = editor.get(f"{phones(sandbox)}{person.pk}/messages.json", {"after": listing["messages"][1]["id"]}).json()
    assert [b["text"] for b in newer["messages"]] == ["Willkommen!"]


def test_messages_json_tolerates_a_bad_after_parameter(editor: Client, sandbox: Connection) -> None:
    person = services.sandbox_person_create(connection=sandbox, name="X")
    services.sandbox_receive(connection=sandbox, address=person.address, text="Hallo")
    response = editor.get(f"{phones(sandbox)}{person.pk}/messages.json", {"after": "abc"})
    assert response.status_code == 200
    assert [b["text"] for b in response.json()["messages"]] == ["Hallo"]


def test_a_blocked_person_is_shown_blocked(editor: Client, sandbox: Connection) -> None:
    person = services.sandbox_person_create(connection=sandbox, name="Weg")
    services.contact_set_status(contact=person, status=Contact.Status.BLOCKED, reason="test")
    assert editor.get(f"{phones(sandbox)}{person.pk}/messages.json").json()["status"] == "blocked"


def test_the_simulator_needs_the_permission_and_a_sandbox(
    client_a: Client, sandbox: Connection, tenant: Tenant
) -> None:
    from tests.messengers.support import whatsapp_connection

    nobody = make_user(roles.EDITOR, username="nobody")
    nobody.groups.clear()
    nobody.is_staff = True
    nobody.save()
    client_a.force_login(nobody)
    assert client_a.get(phones(sandbox)).status_code == 403
    assert client_a.post(phones(sandbox), {"name": "Eindringling"}).status_code == 403
    assert not Contact.objects.filter(display_name="Eindringling").exists()
    client_a.force_login(make_user(roles.EDITOR, username="allowed"))
    wa = whatsapp_connection()
    assert client_a.get(phones(wa)).status_code == 404  # a real messenger has no simulated phones
    assert client_a.get(f"{phones(sandbox)}999999/").status_code == 404
    assert client_a.get(f"/admin/messengers/connection/{sandbox.pk}/phones/1/send/").status_code == 403  # POST only
    assert Connection.objects.filter(provider="sandbox").count() == 1


def test_sandbox_outbound_to_an_unknown_phone_fails_cleanly(
    sandbox: Connection, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        outbound = services.message_queue(connection=sandbox, to="+4915500000000", text="Hallo?")
    outbound.refresh_from_db()
    assert (outbound.status, outbound.error_code) == ("failed", "404")
    assert not SandboxMessage.objects.exists()
    assert OutboundMessage.objects.count() == 1
