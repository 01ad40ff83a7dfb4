"""Two workers filing messages of the same person at once (threads, each with its own database
connection, on committed data in a tenant of its own) end up in one conversation."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection as django_connection
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
