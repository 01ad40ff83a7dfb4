"""The inbox page of the tenant admin: who may open it, what each role sees of the person, the
actions, the live poll, tenant isolation and hostile input."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts import roles
from inbox.models import CannedReply, Conversation
from messengers import services as messenger_services
from messengers.models import Connection, Contact, SandboxMessage, WhatsAppTemplate
from messengers.services import contact_get_or_create
from subscribers.models import Subscriber
from tenants.models import Tenant
from tests.factories import make_user
from tests.helpers import enrol_totp, query_count, signed_in_admin
from tests.messengers.support import apply_all

pytestmark = pytest.mark.usefixtures("tenant")
INBOX = "/admin/inbox/"


@pytest.fixture
def sandbox() -> Connection:
    return Connection.objects.get(provider="sandbox")


@pytest.fixture
def agent(client_a: Client) -> Client:
    client_a.force_login(make_user(roles.INBOX_AGENT, username="agentin"))
    return client_a


def question(sandbox: Connection, name: str, text: str) -> Conversation:
    person = messenger_services.sandbox_person_create(connection=sandbox, name=name)
    messenger_services.sandbox_receive(connection=sandbox, address=person.address, text=text)
    apply_all()
    return Conversation.objects.get(contact=person)


def test_roles_without_the_inbox_cannot_open_it(client_a: Client, sandbox: Connection) -> None:
    conversation = question(sandbox, "Anna", "Hallo")
    assert client_a.get(INBOX).status_code == 302  # not logged in: to the login
    approver = make_user(roles.APPROVER, username="ob")
    enrol_totp(approver)
    client_a.force_login(approver)
    for url in (INBOX, f"{INBOX}{conversation.pk}/", f"{INBOX}changes.json"):
        assert client_a.get(url).status_code == 403, url
    assert client_a.post(f"{INBOX}{conversation.pk}/note/", {"text": "x"}).status_code == 403
    assert not conversation.entries.filter(kind="note").exists()


def test_an_agent_sees_the_list_with_masked_numbers_and_an_admin_sees_them_in_full(
    agent: Client, client_a: Client, sandbox: Connection
) -> None:
    conversation = question(sandbox, "Berta Beispiel", "Wann kommt der Bus?")
    address = conversation.contact.address
    page = agent.get(INBOX).content.decode()
    assert "Wann kommt der Bus?" in page and "B." in page
    assert address not in page and "Berta Beispiel" not in page
    thread = agent.get(f"{INBOX}{conversation.pk}/").content.decode()
    assert address not in thread and "Berta Beispiel" not in thread and f"••{address[-2:]}" in thread
    admin = signed_in_admin(Client(HTTP_HOST=client_a.defaults["HTTP_HOST"]))
    assert address in admin.get(f"{INBOX}{conversation.pk}/").content.decode()


def test_opening_a_conversation_marks_it_read(agent: Client, sandbox: Connection) -> None:
    conversation = question(sandbox, "Carl", "Frage")
    assert conversation.unread_count == 1
    assert agent.get(f"{INBOX}{conversation.pk}/").status_code == 200
    conversation.refresh_from_db()
    assert conversation.unread_count == 0


def test_answer_with_a_canned_reply_note_assign_label_and_close(
    agent: Client, sandbox: Connection, django_capture_on_commit_callbacks: Any
) -> None:
    conversation = question(sandbox, "Doris", "Gilt der Alarm noch?")
    CannedReply.objects.create(title="Alarm", body="Hallo {{ name }}, der Alarm gilt bis morgen.")
    page = agent.get(f"{INBOX}{conversation.pk}/").content.decode()
    assert "Hallo Doris, der Alarm gilt bis morgen." in page  # filled in for this person
    url = f"{INBOX}{conversation.pk}"
    with django_capture_on_commit_callbacks(execute=True):
        response = agent.post(
            f"{url}/reply/", {"text": "Hallo Doris, der Alarm gilt bis morgen.", "return_query": "status=all"}
        )
    assert response.status_code == 302 and response["Location"] == f"{url}/?status=all"
    assert SandboxMessage.objects.filter(
        address=conversation.contact.address, direction="out", text="Hallo Doris, der Alarm gilt bis morgen."
    ).exists()
    agent.post(f"{url}/note/", {"text": "Amt fragen"})
    agent.post(f"{url}/assign/", {"assignee": "me"})
    agent.post(f"{url}/labels/", {"labels": "Alarm, Frage"})
    agent.post(f"{url}/status/", {"status": "closed"})
    conversation.refresh_from_db()
    assert conversation.assignee is not None and conversation.assignee.get_username() == "agentin"
    assert (conversation.status, conversation.labels) == ("closed", ["Alarm", "Frage"])
    thread = agent.get(f"{url}/").content.decode()
    assert "Amt fragen" in thread and "agentin assigned it to agentin" in thread


def test_bad_actions_and_odd_input_are_refused_cleanly(agent: Client, sandbox: Connection) -> None:
    conversation = question(sandbox, "Emil", "Hallo")
    url = f"{INBOX}{conversation.pk}"
    assert agent.get(f"{url}/reply/").status_code == 405
    assert agent.post(f"{url}/explode/").status_code == 404
    assert agent.post(f"{url}/reply/", {"text": "   "}).status_code == 302  # message, no send
    assert not conversation.entries.filter(kind="reply").exists()
    assert agent.post(f"{url}/status/", {"status": "nonsense"}).status_code == 302
    assert agent.post(f"{url}/assign/", {"assignee": "99999999999999999999"}).status_code == 302
    assert agent.post(f"{url}/reply/", {"text": "x", "return_query": "a\nb"}).status_code == 302
    for odd in ("99999999999999999999", "0"):
        assert agent.get(f"{INBOX}{odd}/").status_code == 404
    for query in ({"status": "'; drop"}, {"department": "abc"}, {"q": "%_\\"}, {"page": "-1"}, {"messenger": "x"}):
        assert agent.get(INBOX, query).status_code == 200


def test_the_poll_names_what_changed_since(agent: Client, sandbox: Connection) -> None:
    start = agent.get(f"{INBOX}changes.json").json()
    assert start["changed"] == []  # without a cursor the page only learns where to start
    conversation = question(sandbox, "Frida", "Erste Frage")
    data = agent.get(f"{INBOX}changes.json", {"since": start["cursor"]}).json()
    assert data["changed"] == [conversation.pk] and data["unanswered"] == 1
    # (that nothing is named again once committed, and nothing committed late is missed, needs
    # committed transactions: tests/inbox/test_concurrency.py)
    bad_snapshots = ("5:3:", "3:9:4,2", "3:9:10", "3:9:2", "0:0:", "1:2:1,", f"1:{2**64}:", "1:9:" + "2," * 20_000)
    for bad in ("", "gestern", "-1", "1e9", "9" * 30, *bad_snapshots):  # unparsable: nothing, no error
        assert agent.get(f"{INBOX}changes.json", {"since": bad}).json()["changed"] == []


def test_whatsapp_outside_the_window_offers_templates_and_sends_one(
    agent: Client, django_capture_on_commit_callbacks: Any
) -> None:
    whatsapp = Connection.objects.create(provider="whatsapp", name="WA", status="paused")
    contact = contact_get_or_create(connection=whatsapp, address="+4917100000009")
    Contact.objects.filter(pk=contact.pk).update(last_inbound_at=timezone.now() - timedelta(days=2))
    conversation = Conversation.objects.create(
        contact=contact, connection=whatsapp, last_activity_at=timezone.now(), changed_at=timezone.now()
    )
    template = WhatsAppTemplate.objects.create(
        connection=whatsapp, name="antwort", language="de", body="Hallo {{1}}, {{2}}", parameter_count=2
    )
    WhatsAppTemplate.objects.create(connection=whatsapp, name="pending", language="de", status="PENDING")
    page = agent.get(f"{INBOX}{conversation.pk}/").content.decode()
    assert "more than 24 hours" in page and "antwort (de)" in page and "pending" not in page
    url = f"{INBOX}{conversation.pk}/reply/"
    agent.post(url, {"text": "frei"})
    assert not conversation.entries.filter(kind="reply").exists()
    agent.post(url, {"template": template.pk, "param_1": "Anna"})  # one value missing
    assert not conversation.entries.filter(kind="reply").exists()
    agent.post(url, {"template": template.pk, "param_1": "Anna", "param_2": "danke"})
    reply = conversation.entries.get(kind="reply")
    assert reply.outbound is not None and reply.outbound.payload["template"] == {
        "name": "antwort",
        "language": "de",
        "body_params": ["Anna", "danke"],
    }


def test_the_list_needs_the_same_queries_for_1_and_20_conversations(agent: Client, sandbox: Connection) -> None:
    subscriber = Subscriber.objects.create(name="x")
    question(sandbox, "P0", "Frage 0")
    few, _page = query_count(agent, INBOX)
    for i in range(1, 20):
        conversation = question(sandbox, f"P{i}", f"Frage {i}")
        Contact.objects.filter(pk=conversation.contact_id).update(subscriber=subscriber)
    many, page = query_count(agent, INBOX)
    assert "Frage 19" in page
    assert many == few, (few, many)
    thread_few, _ = query_count(agent, f"{INBOX}{conversation.pk}/")
    for i in range(5):
        messenger_services.sandbox_receive(connection=sandbox, address=conversation.contact.address, text=f"mehr {i}")
    apply_all()
    thread_many, _ = query_count(agent, f"{INBOX}{conversation.pk}/")
    assert thread_many == thread_few


def test_an_agent_of_tenant_b_cannot_open_a_conversation_of_tenant_a(
    client_b: Client, tenant_b: Tenant, sandbox: Connection
) -> None:
    conversation = question(sandbox, "Gina", "Nur für Stadt A")
    with schema_context(tenant_b.schema_name):
        client_b.force_login(make_user(roles.INBOX_AGENT, username="agent_b"))
        assert client_b.get(f"{INBOX}{conversation.pk}/").status_code == 404
        assert client_b.post(f"{INBOX}{conversation.pk}/note/", {"text": "x"}).status_code == 404
        page = client_b.get(INBOX).content.decode()
        assert "Nur für Stadt A" not in page
        assert client_b.get(f"{INBOX}changes.json", {"since": "0"}).json()["changed"] == []
    assert not conversation.entries.filter(kind="note").exists()


def test_inbox_agents_land_on_the_inbox_and_everyone_with_it_sees_the_unanswered_badge(
    agent: Client, client_b: Client, sandbox: Connection, tenant_b: Tenant
) -> None:
    question(sandbox, "Hans", "Eine Frage")
    question(sandbox, "Ines", "Noch eine")
    start = agent.get("/admin/")
    assert start.status_code == 302 and start["Location"] == INBOX
    page = agent.get(INBOX).content.decode()
    assert re.search(r'href="/admin/inbox/"[^>]*aria-current="page"', page), "the entry is marked as current"
    assert re.search(r">\s*2\s*<span[^>]*>\s*unanswered", page), "badge with the number of unanswered"
    with schema_context(tenant_b.schema_name):  # tenant B's badge does not count A's conversations
        client_b.force_login(make_user(roles.INBOX_AGENT, username="agent_nav_b"))
        assert not re.search(r">\s*2\s*<span[^>]*>\s*unanswered", client_b.get(INBOX).content.decode())


def test_editors_keep_their_start_page_and_approvers_do_not_see_the_inbox(client_a: Client) -> None:
    client_a.force_login(make_user(roles.EDITOR, username="red_nav"))
    start = client_a.get("/admin/")
    assert start.status_code == 200 and 'href="/admin/inbox/"' in start.content.decode()
    approver = make_user(roles.APPROVER, username="ob_nav")
    enrol_totp(approver)
    client_a.force_login(approver)
    start = client_a.get("/admin/")
    assert start.status_code == 200 and 'href="/admin/inbox/"' not in start.content.decode()


def test_the_side_panel_shows_subscriptions_and_the_consent_ledger(agent: Client, sandbox: Connection) -> None:
    from django.utils import timezone as tz

    from subscribers.models import ConsentEvent, Subscription
    from tests.channels.factories import make_channel

    conversation = question(sandbox, "Karl", "Frage")
    channel = make_channel("Verkehr", ["VERKEHR"], connections=[sandbox])
    subscriber = Subscriber.objects.create(name="Karl")
    Contact.objects.filter(pk=conversation.contact_id).update(subscriber=subscriber)
    now = tz.now()
    Subscription.objects.create(
        subscriber=subscriber, channel=channel, status="active", source="keyword", subscribed_at=now
    )
    ConsentEvent.objects.create(subscriber=subscriber, channel=channel, kind="opt_in", source="keyword", at=now)
    ConsentEvent.objects.create(subscriber=subscriber, channel=None, kind="opt_out", source="keyword", at=now)
    page = agent.get(f"{INBOX}{conversation.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Verkehr · subscribed since" in page
    assert "Consent ledger" in page and "Opt-in · Verkehr" in page and "Opt-out · all channels" in page
