"""GDPR: export one person's data, erase a person.

Erasure removes what identifies the person and keeps what counts:
* gone: name, interests, district, external reference, every contact (address, profile name),
  the texts of their inbound and outbound messages, sandbox chat bubbles, stored webhook events
  about them, pending e-mail confirmations, the evidence and the link of their ledger entries;
* kept: the Subscriber row (status "erased") and its subscriptions with their dates, so
  subscriber numbers over time stay right, and the ledger entries without identifiers;
* recorded: one "erasure" ledger entry with no subscriber, and an audit entry without personal
  data.
Sandbox "phones" are simulated devices, not people: their contact row and number stay so the
simulator can still show the confirmation; their name and everything they said are erased.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_log
from messengers.adapters.base import Provider
from messengers.models import Connection, Contact, InboundMessage, OutboundMessage, SandboxMessage, WebhookEvent
from subscribers import selectors
from subscribers.models import ConsentEvent, EmailConfirmation, Subscriber, Subscription, new_link_secret
from subscribers.services.consent import consent_record

# OutboundMessage.purpose of the confirmation we send after an erasure: its recipient address
# is blanked once it has left (outbound_scrub).
ERASURE_REPLY_PURPOSE = "erasure"


@dataclass(frozen=True)
class ErasureSummary:
    contacts: int
    subscriptions_ended: int


def _erase_contact(contact: Contact) -> None:
    address, connection_id = contact.address, contact.connection_id
    SandboxMessage.objects.filter(connection_id=connection_id, address=address).delete()
    WebhookEvent.objects.filter(connection_id=connection_id).filter(
        Q(payload__sender=address) | Q(payload__recipient=address)
    ).delete()
    OutboundMessage.objects.filter(Q(contact=contact) | Q(connection_id=connection_id, to=address)).update(
        to="", text="", payload={}, updated_at=timezone.now()
    )
    InboundMessage.objects.filter(contact=contact).delete()
    EmailConfirmation.objects.filter(contact=contact).delete()
    if contact.connection.provider == Provider.SANDBOX:
        Contact.objects.filter(pk=contact.pk).update(
            subscriber=None, display_name="", status=Contact.Status.UNSUBSCRIBED, status_reason="data erased",
            status_changed_at=timezone.now(), last_inbound_at=None, updated_at=timezone.now(),
        )  # fmt: skip
    else:
        contact.delete()


@transaction.atomic
def subscriber_erase(
    *,
    subscriber: Subscriber | None,
    source: str,
    extra_contacts: Iterable[Contact] = (),
    connection: Connection | None = None,
    actor: User | None = None,
    request: HttpRequest | None = None,
) -> ErasureSummary:
    """Erase a person (and/or contacts not linked to anyone, e.g. a number that never
    subscribed). Idempotent: erasing an erased person changes nothing."""
    now = timezone.now()
    contacts: dict[int, Contact] = {c.pk: c for c in extra_contacts}
    ended = 0
    locked: Subscriber | None = None
    if subscriber is not None:
        locked = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
        if locked.status == Subscriber.Status.ERASED and not contacts:
            return ErasureSummary(contacts=0, subscriptions_ended=0)
        contacts.update({c.pk: c for c in Contact.objects.filter(subscriber=locked).select_related("connection")})
    for contact in Contact.objects.filter(pk__in=list(contacts)).select_related("connection"):
        _erase_contact(contact)
    if locked is not None:
        Subscription.objects.filter(subscriber=locked, status=Subscription.Status.PENDING).delete()
        ended = Subscription.objects.filter(subscriber=locked, status=Subscription.Status.ACTIVE).update(
            status=Subscription.Status.UNSUBSCRIBED, unsubscribed_at=now, updated_at=now
        )
        ConsentEvent.objects.filter(subscriber=locked).update(subscriber=None, evidence="")
        EmailConfirmation.objects.filter(subscriber=locked).delete()
        locked.name, locked.tags, locked.external_ref, locked.district = "", [], "", None
        locked.status, locked.erased_at, locked.link_secret = Subscriber.Status.ERASED, now, new_link_secret()
        locked.save()
        if subscriber is not None:
            subscriber.status, subscriber.erased_at = locked.status, locked.erased_at
    consent_record(kind=ConsentEvent.Kind.ERASURE, subscriber=None, channel=None, source=source, connection=connection)
    audit_log(
        action="subscriber.erased", actor=actor, request=request,
        target_label=f"subscriber #{locked.pk}" if locked is not None else "contact without subscriptions",
        details={"contacts": len(contacts), "subscriptions_ended": ended, "source": source},
    )  # fmt: skip
    return ErasureSummary(contacts=len(contacts), subscriptions_ended=ended)


def subscriber_export_personal_data(
    *, subscriber: Subscriber, actor: User | None, request: HttpRequest | None = None
) -> dict[str, Any]:
    """Everything we hold about the person (GDPR Art. 15/20), audit-logged."""
    data = selectors.subscriber_personal_data(subscriber)
    audit_log(
        action="subscriber.data_exported", actor=actor, request=request, target_label=f"subscriber #{subscriber.pk}",
        details={"contacts": len(data["contacts"]), "consent_events": len(data["consent_events"])},
    )  # fmt: skip
    return data


@transaction.atomic
def outbound_scrub() -> int:
    """Blank the recipient of erasure confirmations once they have left the queue, and drop the
    provider's status events about them (they carry the address too)."""
    rows = list(
        OutboundMessage.objects.filter(purpose=ERASURE_REPLY_PURPOSE)
        .exclude(to="")
        .exclude(status=OutboundMessage.Status.QUEUED)
        .values_list("pk", "connection_id", "provider_message_id")
    )
    for _, connection_id, provider_message_id in rows:
        if provider_message_id:
            WebhookEvent.objects.filter(
                connection_id=connection_id, kind=WebhookEvent.Kind.STATUS,
                payload__provider_message_id=provider_message_id,
            ).exclude(state=WebhookEvent.State.PENDING).delete()  # fmt: skip
    return OutboundMessage.objects.filter(pk__in=[pk for pk, _, _ in rows]).update(to="", updated_at=timezone.now())
