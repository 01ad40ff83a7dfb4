"""Two workers filing messages of the same person at once (threads, each with its own database
connection, on committed data in a tenant of its own) end up in one conversation."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import psycopg
import pytest
from django.db import connection as django_connection
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from inbox import services
from inbox.models import Conversation
from messengers import services as messenger_services
from messengers.models import Connection, InboundMessage
from tenants.models import Tenant


def test_two_workers_filing_messages_of_one_person_at_once_make_one_conversation(
    committed_tenant: Callable[..., Tenant],
) -> None:
    tenant = committed_tenant()
    with schema_context(tenant.schema_name):
        sandbox = Connection.objects.get(provider="sandbox")
        person = messenger_services.sandbox_person_create(connection=sandbox, name="Paul")
        now = timezone.now()
        messages = [
            InboundMessage.objects.create(
                connection=sandbox, contact=person, provider_message_id=f"m{i}", kind="text", text=f"t{i}", sent_at=now
            )
            for i in range(6)
        ]
    barrier = threading.Barrier(len(messages))
    errors: list[BaseException] = []

    def worker(message: InboundMessage) -> None:
        try:
            with schema_context(tenant.schema_name):
                barrier.wait()
                services.conversation_receive(message=message)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            django_connection.close()

    threads = [threading.Thread(target=worker, args=(m,)) for m in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with schema_context(tenant.schema_name):
        conversation = Conversation.objects.get(contact=person)
        assert conversation.unread_count == 6
        assert sorted(conversation.entries.values_list("text", flat=True)) == [f"t{i}" for i in range(6)]


@pytest.fixture
def long_transaction_elsewhere() -> Iterator[None]:
    """Another session keeps a transaction (with an id) open the whole test, as a report or a
    backup in another database on the same server would: the server-wide snapshot xmin stays
    behind it."""
    settings_dict = django_connection.settings_dict
    other = psycopg.connect(
        dbname=settings_dict["NAME"], host=settings_dict["HOST"] or None, port=settings_dict["PORT"] or None,
        user=settings_dict["USER"] or None, password=settings_dict["PASSWORD"] or None,
    )  # fmt: skip
    try:
        other.execute("SELECT pg_current_xact_id()")  # starts the transaction and gives it an id
        yield
    finally:
        other.rollback()
        other.close()


@pytest.mark.parametrize("elsewhere", [False, True], ids=["quiet server", "long transaction elsewhere"])
def test_the_inbox_poll_misses_no_change_that_commits_late(
    committed_tenant: Callable[..., Tenant], elsewhere: bool, request: pytest.FixtureRequest
) -> None:
    """A worker's transaction changes a conversation before a poll and commits after it: the next
    poll (from the cursor the first one returned) still names it; once named and committed,
    it is not named again, also while an unrelated transaction stays open (the cursor is a whole
    snapshot, not only its xmin)."""
    if elsewhere:
        request.getfixturevalue("long_transaction_elsewhere")
    from django.test import Client

    from accounts import roles
    from inbox import selectors
    from tests.conftest import in_tenant
    from tests.factories import make_user

    tenant = committed_tenant()
    with in_tenant(tenant):
        sandbox = Connection.objects.get(provider="sandbox")
        person = messenger_services.sandbox_person_create(connection=sandbox, name="Lena")
        message = InboundMessage.objects.create(
            connection=sandbox, contact=person, provider_message_id="late", kind="text", text="Hallo",
            sent_at=timezone.now(),
        )  # fmt: skip
        conversation = services.conversation_receive(message=message)
        assert conversation is not None
        agent = make_user(roles.INBOX_AGENT, username="agent_late")
        domain = tenant.domains.get(is_primary=True).domain
    client = Client(HTTP_HOST=domain)
    with in_tenant(tenant):  # the session lives in the tenant's schema
        client.force_login(agent)
    url = "/admin/inbox/changes.json"
    cursor = client.get(url).json()["cursor"]
    assert client.get(url, {"since": cursor}).json()["changed"] == []  # committed before the cursor

    changed, release, done = threading.Event(), threading.Event(), threading.Event()

    def slow_worker() -> None:
        try:
            with schema_context(tenant.schema_name), transaction.atomic():
                services.conversation_add_note(conversation=conversation, author=agent, text="spät")
                changed.set()
                release.wait(timeout=30)
        finally:
            django_connection.close()
            done.set()

    thread = threading.Thread(target=slow_worker)
    thread.start()
    assert changed.wait(timeout=30)
    first = client.get(url, {"since": cursor}).json()
    assert first["changed"] == []  # not committed yet: invisible
    release.set()
    assert done.wait(timeout=30)
    thread.join()
    second = client.get(url, {"since": first["cursor"]}).json()
    assert second["changed"] == [conversation.pk]  # committed after the first poll: not missed
    assert client.get(url, {"since": second["cursor"]}).json()["changed"] == []
    with in_tenant(tenant):
        assert selectors.unanswered_count() == 1
