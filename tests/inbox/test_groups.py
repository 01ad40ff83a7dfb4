"""Answer many at once: after an alarm, dozens ask the same. Open conversations whose last
messages share most of their German lexemes form a group; one answer reaches each person on
their own messenger and is recorded in each conversation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts import roles
from core.errors import ApplicationError
from inbox import selectors, services
from inbox.models import Conversation, Entry
from messengers import services as messenger_services
from messengers.models import Connection, Contact, SandboxMessage
from messengers.services import contact_get_or_create
from tenants.models import Tenant
from tests.factories import make_user
from tests.messengers.support import apply_all

pytestmark = pytest.mark.usefixtures("tenant")

SAME = [
    "Gilt der Feinstaubalarm morgen noch?",
    "Gilt morgen noch Feinstaubalarm??",
    "gilt der feinstaubalarm auch morgen noch",
]
OTHER = ["Wo kann ich mein Fahrrad abstellen?", "Danke für die Info!"]


def ask(texts: list[str]) -> list[Conversation]:
    sandbox = Connection.objects.get(provider="sandbox")
    people = []
    for i, text in enumerate(texts):
        person = messenger_services.sandbox_person_create(connection=sandbox, name=f"Person {i}")
        messenger_services.sandbox_receive(connection=sandbox, address=person.address, text=text)
        people.append(person)
    apply_all()
    return [Conversation.objects.get(contact=p) for p in people]


def test_similar_questions_form_one_group_and_others_stay_out() -> None:
    same = ask(SAME)
    ask(OTHER)
    groups = selectors.conversation_groups()
    assert len(groups) == 1
    assert {c.pk for c in groups[0].conversations} == {c.pk for c in same}
    assert "feinstaubalarm" in groups[0].lexemes


def test_one_answer_reaches_each_person_and_each_conversation_records_it(
    django_capture_on_commit_callbacks: Any,
) -> None:
    same = ask(SAME)
    agent = make_user(roles.INBOX_AGENT, username="agent_g")
    with django_capture_on_commit_callbacks(execute=True):
        result = services.conversation_group_reply(
            conversation_ids=[c.pk for c in same], author=agent, text="Ja, bis Freitag."
        )
    assert sorted(result.sent) == sorted(c.pk for c in same) and result.skipped == []
    for conversation in same:
        assert SandboxMessage.objects.filter(address=conversation.contact.address, text="Ja, bis Freitag.").exists()
        assert conversation.entries.filter(kind=Entry.Kind.REPLY, text="Ja, bis Freitag.").count() == 1
        conversation.refresh_from_db()
        assert conversation.status == "waiting"


def test_whatsapp_outside_24_hours_and_closed_ones_are_skipped_and_reported() -> None:
    same = ask(SAME[:2])
    agent = make_user(roles.INBOX_AGENT, username="agent_h")
    whatsapp = Connection.objects.create(provider="whatsapp", name="WA", status="paused")
    contact = contact_get_or_create(connection=whatsapp, address="+4917100000077")
    Contact.objects.filter(pk=contact.pk).update(last_inbound_at=timezone.now() - timedelta(days=3))
    old = Conversation.objects.create(
        contact=contact, connection=whatsapp, last_activity_at=timezone.now(), changed_at=timezone.now()
    )
    services.conversation_set_status(conversation=same[1], actor=agent, status="closed")
    result = services.conversation_group_reply(
        conversation_ids=[same[0].pk, same[1].pk, old.pk], author=agent, text="Ja."
    )
    assert result.sent == [same[0].pk] and sorted(result.skipped) == sorted([same[1].pk, old.pk])
    assert not old.entries.exists()


def test_roles_and_empty_answers() -> None:
    same = ask(SAME[:2])
    approver = make_user(roles.APPROVER, username="ob_g")
    with pytest.raises(ApplicationError):
        services.conversation_group_reply(conversation_ids=[c.pk for c in same], author=approver, text="x")
    agent = make_user(roles.INBOX_AGENT, username="agent_i")
    with pytest.raises(ApplicationError):
        services.conversation_group_reply(conversation_ids=[c.pk for c in same], author=agent, text="  ")
    assert not Entry.objects.filter(kind=Entry.Kind.REPLY).exists()


def test_the_groups_page_sends_to_the_ticked_people_only(
    client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    same = ask(SAME)
    client_a.force_login(make_user(roles.INBOX_AGENT, username="agent_j"))
    page = client_a.get("/admin/inbox/groups/").content.decode()
    assert "3 people ask" in page and all(f'value="{c.pk}"' in page for c in same)
    with django_capture_on_commit_callbacks(execute=True):
        done = client_a.post(
            "/admin/inbox/groups/reply/", {"conversation": [same[0].pk, same[2].pk, "abc"], "text": "Ja."}
        )
    assert done.status_code == 302
    assert [c.entries.filter(kind="reply").exists() for c in same] == [True, False, True]
    assert client_a.post("/admin/inbox/groups/reply/", {"text": "Ja."}).status_code == 302  # nobody ticked


def test_another_tenant_cannot_answer_these_conversations(client_b: Client, tenant_b: Tenant) -> None:
    same = ask(SAME[:2])
    with schema_context(tenant_b.schema_name):
        client_b.force_login(make_user(roles.INBOX_AGENT, username="agent_b_g"))
        client_b.post("/admin/inbox/groups/reply/", {"conversation": [c.pk for c in same], "text": "Fremd"})
        assert "Gilt der Feinstaubalarm" not in client_b.get("/admin/inbox/groups/").content.decode()
    assert not Entry.objects.filter(text="Fremd").exists()
