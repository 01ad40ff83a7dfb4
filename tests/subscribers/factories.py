"""Building blocks for subscriber tests (channels come from tests.channels.factories). Objects
with rules (consent) are made through the services; `say` drives the real inbound pipeline on the sandbox messenger."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from channels.models import Channel
from messengers.models import Connection, Contact, SandboxMessage
from messengers.selectors import connection_sandbox
from messengers.services import contact_get_or_create, sandbox_receive, webhook_events_apply

Capture = Callable[..., AbstractContextManager[Any]]
_numbers = itertools.count(1)


def sandbox() -> Connection:
    connection = connection_sandbox()
    assert connection is not None, "onboarding gives every tenant a sandbox connection"
    return connection


def phone(connection: Connection | None = None, name: str = "Erika Muster") -> Contact:
    """A simulated person on the sandbox (a new number each time)."""
    return contact_get_or_create(
        connection=connection or sandbox(), address=f"+49155{next(_numbers):08d}", display_name=name
    )


def say(
    capture: Capture,
    contact: Contact,
    text: str = "",
    *,
    kind: str = "text",
    payload: dict[str, Any] | None = None,
) -> None:
    """The person sends something; the webhook pipeline, our handler and the reply all run."""
    with capture(execute=True):
        sandbox_receive(connection=contact.connection, address=contact.address, text=text, kind=kind, payload=payload)
    # an apply flag left in the cache by an earlier test must not swallow this event
    with capture(execute=True):
        webhook_events_apply()


def replies(contact: Contact) -> list[str]:
    return list(
        SandboxMessage.objects.filter(
            connection=contact.connection, address=contact.address, direction=SandboxMessage.Direction.TO_PHONE
        )
        .order_by("pk")
        .values_list("text", flat=True)
    )


def last_reply(contact: Contact) -> str:
    found = replies(contact)
    assert found, "no reply was sent"
    return found[-1]


def make_people(
    count: int,
    channels: Sequence[Channel],
    connection: Connection | None = None,
    *,
    prefix: str = "+4915700",
    **fields: Any,
) -> list[Any]:
    """Many subscribers at once (bulk), each with a contact and active subscriptions."""
    from django.utils import timezone

    from subscribers.models import Subscriber, Subscription

    connection = connection or sandbox()
    start = next(_numbers) * 1000
    people = Subscriber.objects.bulk_create([Subscriber(name=f"Person {start + i}", **fields) for i in range(count)])
    Contact.objects.bulk_create(
        [
            Contact(connection=connection, subscriber=p, address=f"{prefix}{start + i:06d}", display_name=p.name)
            for i, p in enumerate(people)
        ]
    )
    now = timezone.now()
    Subscription.objects.bulk_create(
        [
            Subscription(subscriber=p, channel=c, status="active", source="import", subscribed_at=now)
            for p in people
            for c in channels
        ]
    )
    return people


def forget_cached_tenants() -> None:
    """The tenant middleware keeps host → tenant for a few seconds; tests that change a tenant's
    branding or settings and then request a page must not see the old object."""
    from core import middleware

    cached = getattr(getattr(middleware, "CachedTenantMiddleware", None), "_cache", None)
    if cached is not None:
        cached.clear()
