"""The sandbox messenger's simulated phones: create a simulated person, let them send something
(it enters the same pipeline as a real webhook), report our messages to them as read."""

from __future__ import annotations

import secrets
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_noop

from core.errors import ApplicationError
from messengers.adapters.base import InboundMessage as InboundEvent
from messengers.adapters.base import Provider, StatusEvent
from messengers.models import Connection, Contact, SandboxMessage
from messengers.services.connections import connection_create
from messengers.services.contacts import contact_get_or_create
from messengers.services.webhook_events import webhook_events_store

# The demo's look-alikes (Connection.demo_presents_as): what `seed_demo` creates per tenant.
DEMO_LOOKALIKES = (
    (Provider.WHATSAPP, "WhatsApp (Demo)"),
    (Provider.TELEGRAM, "Telegram (Demo)"),
    (Provider.EMAIL, "E-Mail (Demo)"),
)


def sandbox_demo_lookalikes_ensure() -> list[Connection]:
    """For `seed_demo`: one sandbox connection per look in DEMO_LOOKALIKES, which the subscribe
    page shows as WhatsApp, Telegram and e-mail while settings.DEMO_MODE is on. They deliver to
    the simulated phones like any sandbox. Idempotent: an existing one of a look is kept."""
    found: list[Connection] = []
    for look, name in DEMO_LOOKALIKES:
        connection = (
            Connection.objects.filter(provider=Provider.SANDBOX, demo_presents_as=look.value).order_by("pk").first()
        )
        if connection is None:
            connection = connection_create(provider=Provider.SANDBOX.value, name=name, public_address=name)
            connection.demo_presents_as = look.value
            connection.save(update_fields=["demo_presents_as", "updated_at"])
        found.append(connection)
    return found


def sandbox_person_create(*, connection: Connection, name: str) -> Contact:
    if connection.provider != Provider.SANDBOX:
        raise ApplicationError(gettext_noop("Simulated people exist only on the sandbox messenger."))
    name = name.strip()[:200] or "Testperson"
    for _ in range(20):
        address = f"+49155{secrets.randbelow(10**8):08d}"
        if not Contact.objects.filter(connection=connection, address=address).exists():
            return contact_get_or_create(connection=connection, address=address, display_name=name)
    raise ApplicationError(gettext_noop("Could not find a free sandbox number; try again."))


def sandbox_receive(
    *, connection: Connection, address: str, text: str = "", kind: str = "text", payload: dict[str, Any] | None = None
) -> SandboxMessage:
    """A simulated person sends something: it enters the same pipeline as a real webhook."""
    if connection.provider != Provider.SANDBOX:
        raise ApplicationError(gettext_noop("Only sandbox connections have simulated phones."))
    message_id = f"sbx-in-{secrets.token_hex(8)}"
    bubble = SandboxMessage.objects.create(
        connection=connection,
        address=address,
        direction=SandboxMessage.Direction.FROM_PHONE,
        text=text,
        provider_message_id=message_id,
    )
    contact = Contact.objects.filter(connection=connection, address=address).first()
    event = InboundEvent(
        provider_message_id=message_id,
        sender=address,
        at=timezone.now(),
        kind=kind,  # type: ignore[arg-type]
        text=text,
        sender_name=contact.display_name if contact else "",
        payload=payload or {},
    )
    webhook_events_store(connection=connection, events=[event], raw={"sandbox": True, "text": text, "kind": kind})
    return bubble


def sandbox_mark_read(*, connection: Connection, address: str) -> int:
    """The simulated phone displayed our messages: report them `read`, like a provider would."""
    now = timezone.now()
    unread = list(
        SandboxMessage.objects.filter(
            connection=connection, address=address, direction=SandboxMessage.Direction.TO_PHONE, read_at__isnull=True
        ).values_list("pk", "provider_message_id")
    )
    if not unread:
        return 0
    SandboxMessage.objects.filter(pk__in=[pk for pk, _ in unread]).update(read_at=now)
    events = [StatusEvent(provider_message_id=mid, status="read", at=now, recipient=address) for _, mid in unread]
    webhook_events_store(connection=connection, events=events)
    return len(unread)
