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

This module erases only the subscribers app's own rows. Every other app erases its rows itself
through a hook listed in settings.SUBSCRIBER_ERASURE_HOOKS (messengers: contacts, messages,
webhook events, in messengers.erasure; broadcasts: deliveries). The hook contract:

    hook(*, subscriber_id: int | None, contact_ids: list[int], since: datetime | None)
        -> Iterable[str]

* It runs inside the erasure's transaction, in list order, before the subscribers app touches
  its own rows; `subscriber_id` is None when only contacts without a person are erased, and
  `contact_ids` are the messengers.Contact ids of the person (the hook erases what hangs off
  them; the messengers hook deletes the contacts themselves, so it comes last).
* It removes or blanks what identifies the person in its app's rows, keeps what counts, must be
  idempotent (erasing twice changes nothing) and must not fail for ids it does not know.
* It returns the provider message ids it blanked; their stored delivery statuses are then
  dropped (messengers.erasure.status_events_erase), since those carry the recipient.
* The periodic clean-up calls it again for a day after each erasure with `since` set to the
  erasure time and no contacts (they are gone), for writes that were in flight at the erasure.
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
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import User
from accounts.services import audit_log
from core.http import RequestMeta
from messengers.erasure import outbound_messages_scrub, status_events_erase
from messengers.models import Connection, Contact
from subscribers import selectors
from subscribers.models import ConsentEvent, EmailConfirmation, Subscriber, Subscription, new_link_secret
from subscribers.services.consent import consent_record, subscription_changed_emit

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


def _erase_elsewhere(*, subscriber_id: int | None, contact_ids: list[int], since: datetime | None = None) -> set[str]:
    """Rows other apps keep about the person (settings.SUBSCRIBER_ERASURE_HOOKS); returns the
    provider message ids they blanked."""
    provider_ids: set[str] = set()
    for path in settings.SUBSCRIBER_ERASURE_HOOKS:  # the contract: see the module docstring
        provider_ids |= set(import_string(path)(subscriber_id=subscriber_id, contact_ids=contact_ids, since=since))
    return provider_ids


def _forget_in_admin_log(subscriber: Subscriber) -> None:
    """Django's admin log names what staff changed ("Erika Muster"); keep the line, not the name."""
    LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Subscriber), object_id=str(subscriber.pk)
    ).update(object_repr=f"#{subscriber.pk}")


@transaction.atomic
def subscriber_erase(
    *,
    subscriber: Subscriber | None,
    source: str,
    extra_contacts: Iterable[Contact] = (),
    connection: Connection | None = None,
    actor: User | None = None,
    meta: RequestMeta | None = None,
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
        contacts.update({c.pk: c for c in selectors.subscriber_contacts(locked)})
    # before the messengers hook deletes the contacts they point at
    EmailConfirmation.objects.filter(contact_id__in=list(contacts)).delete()
    provider_ids = _erase_elsewhere(subscriber_id=locked.pk if locked else None, contact_ids=list(contacts))
    status_events_erase(provider_message_ids=provider_ids)
    if locked is not None:
        _forget_in_admin_log(locked)
        Subscription.objects.filter(subscriber=locked, status=Subscription.Status.PENDING).delete()
        ending = list(
            Subscription.objects.filter(subscriber=locked, status=Subscription.Status.ACTIVE).select_related("channel")
        )
        # the connection each ending subscription was consented through (its latest opt-in)
        joined_through = dict(
            ConsentEvent.objects.filter(
                subscriber=locked, kind=ConsentEvent.Kind.OPT_IN, channel_id__in=[s.channel_id for s in ending]
            ).order_by("id").values_list("channel_id", "connection_id")
        )  # fmt: skip
        connections = Connection.objects.in_bulk([pk for pk in joined_through.values() if pk is not None])
        ended = Subscription.objects.filter(pk__in=[s.pk for s in ending]).update(
            status=Subscription.Status.UNSUBSCRIBED, unsubscribed_at=now, updated_at=now
        )
        ConsentEvent.objects.filter(subscriber=locked).update(subscriber=None, evidence="")
        # Without identifiers the ledger still says which channels lost a subscriber, and on
        # which messenger (the channel roll-up counts these as leaves: analytics.rollups.channels).
        for subscription in ending:
            connection_id = joined_through.get(subscription.channel_id)
            consent_record(
                kind=ConsentEvent.Kind.OPT_OUT, subscriber=None, channel=subscription.channel, source=source,
                source_detail="erasure", at=now,
                connection=connections.get(connection_id) if connection_id is not None else None,
            )  # fmt: skip
        EmailConfirmation.objects.filter(subscriber=locked).delete()
        locked.name, locked.tags, locked.external_ref, locked.district = "", [], "", None
        locked.status, locked.erased_at, locked.link_secret = Subscriber.Status.ERASED, now, new_link_secret()
        locked.save()
        if subscriber is not None:
            subscriber.status, subscriber.erased_at = locked.status, locked.erased_at
    event = consent_record(
        kind=ConsentEvent.Kind.ERASURE, subscriber=None, channel=None, source=source, connection=connection
    )
    if locked is not None:
        subscription_changed_emit(
            kind=ConsentEvent.Kind.ERASURE, subscriber_id=locked.pk, channel=None, source=source, at=event.at
        )
    audit_log(
        action="subscriber.erased", actor=actor, meta=meta,
        target_label=f"subscriber #{locked.pk}" if locked is not None else "contact without subscriptions",
        details={"contacts": len(contacts), "subscriptions_ended": ended, "source": source},
    )  # fmt: skip
    return ErasureSummary(contacts=len(contacts), subscriptions_ended=ended)


def subscriber_export_personal_data(
    *, subscriber: Subscriber, actor: User | None, meta: RequestMeta | None = None
) -> dict[str, Any]:
    """Everything we hold about the person (GDPR Art. 15/20), audit-logged."""
    data = selectors.subscriber_personal_data(subscriber)
    audit_log(
        action="subscriber.data_exported", actor=actor, meta=meta, target_label=f"subscriber #{subscriber.pk}",
        details={"contacts": len(data["contacts"]), "consent_events": len(data["consent_events"])},
    )  # fmt: skip
    return data


@transaction.atomic
def outbound_scrub() -> int:
    """Blank the recipient and the provider message id (it encodes the address) of erasure
    confirmations once they have left the queue, and drop the provider's status events about
    them (they carry the address too)."""
    return outbound_messages_scrub(purpose=ERASURE_REPLY_PURPOSE)


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
    status_events_erase(provider_message_ids=provider_ids)
    return len(provider_ids)
