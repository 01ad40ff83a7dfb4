"""Forwarding to a department (Fachamt): the e-mail carries a pseudonymous reference and a
one-time link, never the person's number or name unless the agent includes them; the answer
lands as a draft; the link works once, only for its tenant, and expires. Plus the retention purge."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts import roles
from accounts.models import AuditEvent
from inbox import services
from inbox.models import Conversation, Department, Entry, Forward, InboxSettings
from messengers import services as messenger_services
from messengers.models import Connection, InboundMessage, SandboxMessage
from tenants.models import Tenant
from tests.factories import make_user
from tests.messengers.support import apply_all

pytestmark = pytest.mark.usefixtures("tenant")


@pytest.fixture
def asked() -> Conversation:
    sandbox = Connection.objects.get(provider="sandbox")
    person = messenger_services.sandbox_person_create(connection=sandbox, name="Erika Muster")
    messenger_services.sandbox_receive(
        connection=sandbox, address=person.address, text="Der Baum vor Nr. 5 ist morsch."
    )
    apply_all()
    return Conversation.objects.get(contact=person)


@pytest.fixture
def amt() -> Department:
    return Department.objects.create(name="Amt für Umweltschutz", email="umwelt@stadt.example")


def forward(conversation: Conversation, amt: Department, **kwargs: Any) -> Forward:
    agent = make_user(roles.INBOX_AGENT, username=f"agent{Forward.objects.count()}")
    return services.conversation_forward(
        conversation=conversation, actor=agent, department=amt, question=conversation.preview, **kwargs
    )


def link_in(body: str) -> str:
    found = re.search(r"https?://[^/\s]+(/inbox/answer/[^\s]+/)", body)
    assert found is not None, body
    return found.group(1)


def test_the_department_gets_a_pseudonymous_mail_and_answers_once_through_the_link(
    asked: Conversation, amt: Department, client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        sent = forward(asked, amt, note="Bitte prüfen")
    message = mail.outbox[-1]
    assert message.to == ["umwelt@stadt.example"] and sent.reference in message.subject
    body = message.body
    assert "Der Baum vor Nr. 5 ist morsch." in body and "Bitte prüfen" in body
    address = asked.contact.address
    for secret in (address, address[1:], "Erika", "Muster"):
        assert secret not in body and secret not in message.subject
    asked.refresh_from_db()
    assert (asked.status, asked.department_id) == ("waiting", amt.pk)
    assert AuditEvent.objects.filter(action="inbox.forwarded", target_id=str(asked.pk)).exists()

    url = link_in(str(body))
    page = client_a.get(url).content.decode()
    assert "Der Baum vor Nr. 5 ist morsch." in page and address not in page and "Erika" not in page
    assert client_a.post(url, {"text": "Wir schicken morgen jemanden."}).status_code == 302
    draft = asked.entries.get(kind=Entry.Kind.DEPARTMENT)
    assert draft.text == "Wir schicken morgen jemanden." and draft.outbound is None
    assert not SandboxMessage.objects.filter(direction="out").exists()  # a draft: nothing sent yet
    asked.refresh_from_db()
    assert asked.status == "open" and asked.waiting_since is not None
    again = client_a.post(url, {"text": "Noch mal"})
    assert again.status_code == 200 and "cannot be used again" in again.content.decode()
    assert asked.entries.filter(kind=Entry.Kind.DEPARTMENT).count() == 1


def test_contact_details_only_when_the_agent_includes_them(
    asked: Conversation, amt: Department, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        forward(asked, amt, include_contact=True)
    assert asked.contact.address in mail.outbox[-1].body and "Erika Muster" in mail.outbox[-1].body


def test_the_tenant_may_send_department_answers_directly(
    asked: Conversation, amt: Department, django_capture_on_commit_callbacks: Any
) -> None:
    InboxSettings.objects.update_or_create(key="inbox", defaults={"send_department_answers": True})
    sent = forward(asked, amt)
    with django_capture_on_commit_callbacks(execute=True):
        services.forward_answer(forward=sent, text="Erledigt.")
    assert SandboxMessage.objects.filter(address=asked.contact.address, direction="out", text="Erledigt.").exists()


def test_bad_expired_and_foreign_links_are_refused(
    asked: Conversation, amt: Department, client_a: Client, client_b: Client, tenant_b: Tenant
) -> None:
    sent = forward(asked, amt)
    token = services.forward_token(sent)
    for bad in (f"{sent.pk}.x", f"{sent.pk + 1}.{token.split('.')[1]}", "abc", "9" * 40 + ".x", "%C3%A4.%2F"):
        assert client_a.get(f"/inbox/answer/{bad}/").status_code == 404, bad
    assert client_a.get("/inbox/answer/%00/").status_code == 400  # NUL: refused before any view
    with schema_context(tenant_b.schema_name):
        assert client_b.get(f"/inbox/answer/{token}/").status_code == 404  # signed for tenant A only
    Forward.objects.filter(pk=sent.pk).update(created_at=timezone.now() - timedelta(days=31))
    assert client_a.post(f"/inbox/answer/{token}/", {"text": "spät"}).status_code == 404
    assert not asked.entries.filter(kind=Entry.Kind.DEPARTMENT).exists()


def test_forwarding_needs_the_permission_and_a_question(asked: Conversation, amt: Department) -> None:
    from core.errors import ApplicationError

    approver = make_user(roles.APPROVER, username="ob")
    with pytest.raises(ApplicationError):
        services.conversation_forward(conversation=asked, actor=approver, department=amt, question="x")
    agent = make_user(roles.INBOX_AGENT, username="agent_q")
    with pytest.raises(ApplicationError, match="question"):
        services.conversation_forward(conversation=asked, actor=agent, department=amt, question="  ")
    assert not Forward.objects.exists()


def test_the_admin_forward_form_and_the_draft_in_the_thread(
    asked: Conversation, amt: Department, client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    client_a.force_login(make_user(roles.INBOX_AGENT, username="agent_f"))
    page = client_a.get(f"/admin/inbox/{asked.pk}/").content.decode()
    assert 'id="forward-form"' in page and "Der Baum vor Nr. 5 ist morsch.</textarea>" in page
    with django_capture_on_commit_callbacks(execute=True):
        done = client_a.post(
            f"/admin/inbox/{asked.pk}/forward/", {"department": amt.pk, "question": "Baum morsch?", "note": ""}
        )
    assert done.status_code == 302 and mail.outbox[-1].body.count("Baum morsch?") == 1
    sent = Forward.objects.get()
    services.forward_answer(forward=sent, text="Kommen morgen.")
    thread = client_a.get(f"/admin/inbox/{asked.pk}/").content.decode()
    assert "Answer from Amt für Umweltschutz" in thread and 'data-fill="Kommen morgen."' in thread


def test_the_purge_deletes_what_is_older_than_the_retention(asked: Conversation) -> None:
    old = timezone.now() - timedelta(days=91)
    Conversation.objects.filter(pk=asked.pk).update(last_activity_at=old)
    InboundMessage.objects.update(received_at=old)
    sandbox = Connection.objects.get(provider="sandbox")
    fresh_person = messenger_services.sandbox_person_create(connection=sandbox, name="Neu")
    messenger_services.sandbox_receive(connection=sandbox, address=fresh_person.address, text="Neue Frage")
    apply_all()
    services.inbox_purge(retention_days=90)
    assert list(Conversation.objects.values_list("contact__display_name", flat=True)) == ["Neu"]
    assert list(InboundMessage.objects.values_list("text", flat=True)) == ["Neue Frage"]
    assert not Entry.objects.filter(text__contains="morsch").exists()
