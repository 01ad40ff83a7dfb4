"""GDPR: export one person's data, erase a person.

Erasure removes what identifies the person and keeps what counts:
* gone: name, interests, district, external reference, every contact (address, profile name),
  their inbound messages, the recipient, text, provider message id and provider error text of
  their outbound messages and broadcast deliveries (a WhatsApp wamid is base64 of the number, a
  Telegram id starts with the chat id, Twilio's errors quote the number), sandbox chat bubbles,
  stored webhook events about them in any state (by address and by those message ids), pending
  e-mail confirmations, the evidence and the link of their ledger entries, and their name in
  Django's admin log;
* kept: the Subscriber row (status "erased") and its subscriptions with their dates, so
  subscriber numbers over time stay right, the ledger entries without identifiers, and the
  deliveries' statuses (broadcast counts);
* recorded: one "erasure" ledger entry with no subscriber, and an audit entry without personal
  data.
Statuses that arrive later for the erased message ids match nothing; they wait as `deferred`
and are purged with the webhook retention (messengers.services.webhook_events_purge). A send in
flight during the erasure records its provider id afterwards: the periodic clean-up
(`erasure_late_scrub`) blanks those for a day after each erasure.
Sandbox "phones" are simulated devices, not people: their contact row and number stay so the
simulator can still show the confirmation; their name and everything they said are erased.
Other apps erase their rows about a person through settings.SUBSCRIBER_ERASURE_HOOKS.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import User
from accounts.services import audit_log
from messengers.adapters.base import Provider
from messengers.models import Connection, Contact, InboundMessage, OutboundMessage, SandboxMessage, WebhookEvent
from messengers.services import webhook_events_forget
from subscribers import selectors
from subscribers.models import ConsentEvent, EmailConfirmation, Subscriber, Subscription, new_link_secret
from subscribers.services.consent import consent_record

# OutboundMessage.purpose of the confirmation we send after an erasure: its recipient address
# and provider message id are blanked once it has left (outbound_scrub).
ERASURE_REPLY_PURPOSE = "erasure"
# How long after an erasure the periodic clean-up looks for provider ids that sends in flight at
# the erasure recorded afterwards (a send takes seconds; a sender's lease minutes).
ERASURE_LATE_WRITES = timedelta(days=1)


@dataclass(frozen=True)
class ErasureSummary:
    contacts: int
    subscriptions_ended: int


def _erase_contact(contact: Contact) -> set[str]:
    """Erase what one address left behind; returns the provider message ids it blanked (their
    stored status events go too)."""
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
    EmailConfirmation.objects.filter(contact=contact).delete()
    if contact.connection.provider == Provider.SANDBOX:
        Contact.objects.filter(pk=contact.pk).update(
            subscriber=None, display_name="", status=Contact.Status.UNSUBSCRIBED, status_reason="data erased",
            status_changed_at=timezone.now(), last_inbound_at=None, updated_at=timezone.now(),
        )  # fmt: skip
    else:
        contact.delete()
    return provider_ids


def _erase_elsewhere(*, subscriber_id: int | None, contact_ids: list[int], since: datetime | None = None) -> set[str]:
    """Rows other apps keep about the person (settings.SUBSCRIBER_ERASURE_HOOKS); returns the
    provider message ids they blanked."""
    provider_ids: set[str] = set()
    for path in settings.SUBSCRIBER_ERASURE_HOOKS:
        provider_ids |= set(import_string(path)(subscriber_id=subscriber_id, contact_ids=contact_ids, since=since))
    return provider_ids


def _delete_status_events(provider_ids: set[str]) -> None:
    """Stored statuses of erased messages, whatever their state (they carry the recipient)."""
    ids = sorted(provider_ids)
    for start in range(0, len(ids), 1000):
        WebhookEvent.objects.filter(
            kind=WebhookEvent.Kind.STATUS, payload__provider_message_id__in=ids[start : start + 1000]
        ).delete()


def _forget_in_admin_log(subscriber: Subscriber | None, contact_ids: list[int]) -> None:
    """Django's admin log names what staff changed ("Erika Muster"); keep the line, not the name."""
    targets: list[tuple[type[Contact] | type[Subscriber], int]] = [(Contact, pk) for pk in contact_ids]
    if subscriber is not None:
        targets.append((Subscriber, subscriber.pk))
    for model, pk in targets:
        LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model), object_id=str(pk)).update(
            object_repr=f"#{pk}"
        )


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
    provider_ids = _erase_elsewhere(subscriber_id=locked.pk if locked else None, contact_ids=list(contacts))
    for contact in Contact.objects.filter(pk__in=list(contacts)).select_related("connection"):
        provider_ids |= _erase_contact(contact)
    _delete_status_events(provider_ids)
    _forget_in_admin_log(locked, list(contacts))
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
    """Blank the recipient and the provider message id (it encodes the address) of erasure
    confirmations once they have left the queue, and drop the provider's status events about
    them (they carry the address too). Statuses that come later find no message, wait as
    `deferred` and are purged with the webhook retention."""
    rows = list(
        OutboundMessage.objects.filter(purpose=ERASURE_REPLY_PURPOSE)
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


@transaction.atomic
def erasure_late_scrub() -> int:
    """Periodic: a send that was in flight when its recipient was erased records the provider's
    message id afterwards; blank those (and their status events) for a day after each erasure.
    Returns how many ids it blanked."""
    since = timezone.now() - ERASURE_LATE_WRITES
    erased = Subscriber.objects.filter(status=Subscriber.Status.ERASED, erased_at__gte=since)
    provider_ids: set[str] = set()
    for pk, erased_at in erased.values_list("pk", "erased_at"):
        provider_ids |= _erase_elsewhere(subscriber_id=pk, contact_ids=[], since=erased_at)
    _delete_status_events(provider_ids)
    return len(provider_ids)
