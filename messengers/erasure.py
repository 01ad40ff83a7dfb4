"""GDPR erasure of what the messengers app keeps about a person: contacts (address, profile
name), their inbound messages, sandbox chat bubbles, stored webhook events about them (kept as
hashed tombstones, so a provider's re-delivery is dropped), the recipient, text and provider
message id of outbound messages, the contact's name in Django's admin log, and outgoing webhook
events carrying what the person wrote.

`contacts_erase` is registered in settings.SUBSCRIBER_ERASURE_HOOKS; the contract is documented
in subscribers.services.gdpr. `status_events_erase` drops stored delivery statuses of messages
any app blanked (they carry the recipient), and `outbound_messages_scrub` blanks messages of one
purpose once they have left the queue. Reading who the person is, the ledger and the audit
entry are the subscribers app's business, not this module's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q
from django.utils import timezone

from messengers.adapters.base import Provider
from messengers.models import Contact, InboundMessage, OutboundMessage, SandboxMessage, WebhookEvent
from messengers.outgoing.models import WebhookDelivery
from messengers.services import webhook_events_forget


def _contact_erase(contact: Contact) -> set[str]:
    """Erase what one address left behind; returns the provider message ids it blanked.
    Sandbox "phones" are simulated devices, not people: their contact row and number stay so the
    simulator can still show the confirmation; their name and everything they said go."""
    address, connection_id = contact.address, contact.connection_id
    SandboxMessage.objects.filter(connection_id=connection_id, address=address).delete()
    webhook_events_forget(
        connection_id=connection_id,
        event_ids=WebhookEvent.objects.filter(connection_id=connection_id)
        .filter(Q(payload__sender=address) | Q(payload__recipient=address))
        .values_list("pk", flat=True),
    )
    outbound = OutboundMessage.objects.filter(Q(contact=contact) | Q(connection_id=connection_id, to=address))
    provider_ids = set(outbound.exclude(provider_message_id="").values_list("provider_message_id", flat=True))
    outbound.update(to="", text="", payload={}, provider_message_id="", error_detail="", updated_at=timezone.now())
    InboundMessage.objects.filter(contact=contact).delete()
    if contact.connection.provider == Provider.SANDBOX:
        Contact.objects.filter(pk=contact.pk).update(
            subscriber=None, display_name="", status=Contact.Status.UNSUBSCRIBED, status_reason="data erased",
            status_changed_at=timezone.now(), last_inbound_at=None, updated_at=timezone.now(),
        )  # fmt: skip
    else:
        contact.delete()
    return provider_ids


def contacts_erase(*, subscriber_id: int | None, contact_ids: list[int], since: datetime | None) -> list[str]:
    """Erasure hook: erase the given contacts and what they left behind. The periodic clean-up
    after an erasure (`since` set) passes no contacts: they are gone by then, so there is nothing
    left to do here. Returns the provider message ids it blanked."""
    provider_ids: set[str] = set()
    for contact in Contact.objects.filter(pk__in=contact_ids).select_related("connection"):
        provider_ids |= _contact_erase(contact)
    # Django's admin log names what staff changed ("Erika Muster"); keep the line, not the name.
    content_type = ContentType.objects.get_for_model(Contact)
    for pk in contact_ids:
        LogEntry.objects.filter(content_type=content_type, object_id=str(pk)).update(object_repr=f"#{pk}")
    # outgoing webhooks' copies of what the person wrote, sent or still waiting (and their log)
    if contact_ids:
        WebhookDelivery.objects.filter(
            event_type="message.received", payload__data__contact_id__in=list(contact_ids)
        ).delete()
    return sorted(provider_ids)


def status_events_erase(*, provider_message_ids: Iterable[str]) -> None:
    """Stored statuses of erased messages, whatever their state (they carry the recipient)."""
    ids = sorted(provider_message_ids)
    for start in range(0, len(ids), 1000):
        WebhookEvent.objects.filter(
            kind=WebhookEvent.Kind.STATUS, payload__provider_message_id__in=ids[start : start + 1000]
        ).delete()


def outbound_messages_scrub(*, purpose: str) -> int:
    """Blank the recipient and the provider message id (it encodes the address) of messages of
    this purpose once they have left the queue, and drop the provider's status events about them
    (they carry the address too). Statuses that come later find no message, wait as `deferred`
    and are purged with the webhook retention. Returns how many messages it blanked."""
    rows = list(
        OutboundMessage.objects.filter(purpose=purpose)
        .filter(~Q(to="") | ~Q(provider_message_id="") | ~Q(error_detail=""))
        .exclude(status=OutboundMessage.Status.QUEUED)
        .values_list("pk", "connection_id", "provider_message_id")
    )
    for _, connection_id, provider_message_id in rows:
        if provider_message_id:
            WebhookEvent.objects.filter(
                connection_id=connection_id, kind=WebhookEvent.Kind.STATUS,
                payload__provider_message_id=provider_message_id,
            ).exclude(state=WebhookEvent.State.PENDING).delete()  # fmt: skip
    return OutboundMessage.objects.filter(pk__in=[pk for pk, _, _ in rows]).update(
        to="", provider_message_id="", error_detail="", updated_at=timezone.now()
    )
