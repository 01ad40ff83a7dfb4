"""Subscribe, unsubscribe and personal settings. Every change of consent is in the ledger.

Semantics the broadcast pipeline relies on: a person receives a channel on a messenger while
their Subscription is active and that Contact is active. Unsubscribing from everything ends
every subscription and sets every contact of the person to "unsubscribed" (blocked stays
blocked); a new opt-in on one messenger reactivates that contact only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from accounts.models import User
from accounts.services import audit_log
from channels.models import Channel
from core.errors import ApplicationError
from core.http import RequestMeta
from messengers.models import Connection, Contact
from messengers.services import contact_get_or_create, contact_set_status
from subscribers.models import ConsentEvent, District, Language, Source, Subscriber, Subscription
from subscribers.services.consent import consent_record, consent_text_current

UNKNOWN_LANGUAGE = "Unknown language “{language}”; choose one of: {choices}."


@dataclass
class StartResult:
    started: list[Channel] = field(default_factory=list)
    already: list[Channel] = field(default_factory=list)


def _link_contact(contact: Contact, subscriber: Subscriber) -> None:
    # Contact.subscriber is the one field of the messenger layer's contact that subscribers owns.
    Contact.objects.filter(pk=contact.pk).update(subscriber=subscriber, updated_at=timezone.now())
    contact.subscriber = subscriber


@transaction.atomic
def subscriber_for_contact(*, contact: Contact, language: str = "", create: bool = True) -> Subscriber | None:
    """The person behind a contact; creates one (named after the messenger profile) if asked."""
    if contact.subscriber_id is not None:
        subscriber = Subscriber.objects.filter(pk=contact.subscriber_id).first()
        if subscriber is not None and subscriber.status == Subscriber.Status.ACTIVE:
            return subscriber
    if not create:
        return None
    subscriber = Subscriber.objects.create(
        name=contact.display_name[:200], language=language if language in Language.values else Language.DE
    )
    _link_contact(contact, subscriber)
    return subscriber


def contact_reactivate(contact: Contact, reason: str) -> None:
    if contact.status != Contact.Status.ACTIVE:
        contact_set_status(contact=contact, status=Contact.Status.ACTIVE, reason=reason)


@transaction.atomic
def subscription_start(
    *,
    subscriber: Subscriber,
    channels: Iterable[Channel],
    source: str,
    source_detail: str = "",
    evidence: str = "",
    connection: Connection | None = None,
    confirmed: bool = True,
    at: datetime | None = None,
) -> StartResult:
    """Opt in to channels: new or ended subscriptions become active, each with a ledger entry."""
    now = at or timezone.now()
    result = StartResult()
    wanted = list(dict.fromkeys(channels))
    existing = {
        s.channel_id: s
        for s in Subscription.objects.select_for_update().filter(subscriber=subscriber, channel__in=wanted)
    }
    for channel in wanted:
        subscription = existing.get(channel.pk)
        if subscription is not None and subscription.status == Subscription.Status.ACTIVE:
            result.already.append(channel)
            continue
        if subscription is None:
            subscription = Subscription(subscriber=subscriber, channel=channel)
        subscription.status = Subscription.Status.ACTIVE
        subscription.source = source
        subscription.source_detail = source_detail[:120]
        subscription.subscribed_at = now
        subscription.confirmed_at = now if confirmed else None
        subscription.unsubscribed_at = None
        subscription.save()
        consent_record(
            kind=ConsentEvent.Kind.OPT_IN, subscriber=subscriber, channel=channel, source=source,
            source_detail=source_detail, evidence=evidence, connection=connection, at=now,
            consent_text=consent_text_current(channel=channel, language=subscriber.language),
        )  # fmt: skip
        result.started.append(channel)
    return result


@transaction.atomic
def subscriptions_stop(
    *,
    subscriber: Subscriber,
    channels: Iterable[Channel] | None,
    source: str,
    source_detail: str = "",
    evidence: str = "",
    connection: Connection | None = None,
) -> list[Channel]:
    """Opt out of some channels, or of everything (`channels=None`: every subscription ends,
    every contact of the person becomes "unsubscribed"). Returns the channels that ended."""
    now = timezone.now()
    open_states = [Subscription.Status.ACTIVE, Subscription.Status.PENDING]
    subscriptions = Subscription.objects.select_for_update().filter(subscriber=subscriber, status__in=open_states)
    if channels is not None:
        subscriptions = subscriptions.filter(channel__in=list(channels))
    ending = list(subscriptions.select_related("channel"))
    if ending:
        Subscription.objects.filter(pk__in=[s.pk for s in ending]).update(
            status=Subscription.Status.UNSUBSCRIBED, unsubscribed_at=now, updated_at=now
        )
    if channels is None:
        contacts = list(Contact.objects.filter(subscriber=subscriber, status=Contact.Status.ACTIVE))
        for contact in contacts:
            contact_set_status(contact=contact, status=Contact.Status.UNSUBSCRIBED, reason=f"opt-out ({source})")
        if ending or contacts:  # repeating an opt-out (mail systems retry one-click POSTs) adds nothing
            consent_record(
                kind=ConsentEvent.Kind.OPT_OUT, subscriber=subscriber, channel=None, source=source,
                source_detail=source_detail, evidence=evidence, connection=connection, at=now,
            )  # fmt: skip
    else:
        for subscription in ending:
            consent_record(
                kind=ConsentEvent.Kind.OPT_OUT, subscriber=subscriber, channel=subscription.channel, source=source,
                source_detail=source_detail, evidence=evidence, connection=connection, at=now,
            )  # fmt: skip
    return [s.channel for s in ending]


def subscriber_unsubscribe_all(
    *, subscriber: Subscriber, source: str, source_detail: str = "", evidence: str = "",
    connection: Connection | None = None,
) -> list[Channel]:  # fmt: skip
    return subscriptions_stop(
        subscriber=subscriber, channels=None, source=source, source_detail=source_detail, evidence=evidence,
        connection=connection,
    )  # fmt: skip


@transaction.atomic
def subscriber_set_language(*, subscriber: Subscriber, language: str) -> Subscriber:
    if language not in Language.values:
        raise ValueError(UNKNOWN_LANGUAGE.format(language=language, choices=", ".join(Language.values)))
    if subscriber.language != language:
        subscriber.language = language
        subscriber.save(update_fields=["language", "updated_at"])
    return subscriber


@transaction.atomic
def subscriber_set_district(*, subscriber: Subscriber, district: District | None) -> Subscriber:
    if subscriber.district_id != (district.pk if district else None):
        subscriber.district = district
        subscriber.save(update_fields=["district", "updated_at"])
    return subscriber


@transaction.atomic
def subscriber_preferences_update(
    *,
    subscriber: Subscriber,
    channels: Iterable[Channel],
    offered: Iterable[Channel],
    district: District | None,
    language: str,
) -> StartResult:
    """The preference page: `channels` is what the person ticked among `offered`. New ticks are
    opt-ins (and bring back contacts that had unsubscribed from everything), removed ticks
    opt-outs of that channel only."""
    wanted = {c.pk: c for c in channels}
    offered_by_pk = {c.pk: c for c in offered}
    current = set(
        Subscription.objects.filter(subscriber=subscriber, status=Subscription.Status.ACTIVE).values_list(
            "channel_id", flat=True
        )
    )
    detail = "preference page"
    to_start = [c for pk, c in wanted.items() if pk in offered_by_pk and pk not in current]
    to_stop = [c for pk, c in offered_by_pk.items() if pk in current and pk not in wanted]
    result = StartResult()
    if to_start:
        result = subscription_start(
            subscriber=subscriber, channels=to_start, source=Source.WEB_FORM, source_detail=detail
        )
        for contact in Contact.objects.filter(subscriber=subscriber, status=Contact.Status.UNSUBSCRIBED):
            contact_reactivate(contact, "opted in again on the preference page")
    if to_stop:
        subscriptions_stop(subscriber=subscriber, channels=to_stop, source=Source.WEB_FORM, source_detail=detail)
    subscriber_set_district(subscriber=subscriber, district=district)
    if language in Language.values:
        subscriber_set_language(subscriber=subscriber, language=language)
    return result


@transaction.atomic
def subscriber_update(
    *,
    subscriber: Subscriber,
    name: str,
    language: str,
    district: District | None,
    tags: list[str],
    actor: User | None,
    meta: RequestMeta | None = None,
) -> Subscriber:
    """Staff correct a person's details (admin). Audit-logged by field name, not value."""
    if subscriber.status == Subscriber.Status.ERASED:
        raise ValueError("an erased subscriber cannot be edited")
    if language not in Language.values:
        raise ValueError(UNKNOWN_LANGUAGE.format(language=language, choices=", ".join(Language.values)))
    cleaned_tags = list(dict.fromkeys(t.strip()[:40] for t in tags if t.strip()))
    values = {"name": name.strip()[:200], "language": language, "district": district, "tags": cleaned_tags}
    changed = [name for name, value in values.items() if getattr(subscriber, name) != value]
    for name in changed:
        setattr(subscriber, name, values[name])
    if changed:
        subscriber.save(update_fields=[*changed, "updated_at"])
        audit_log(
            action="subscriber.updated", actor=actor, meta=meta, target_label=f"subscriber #{subscriber.pk}",
            details={"fields": changed},
        )  # fmt: skip
    return subscriber


SUBSCRIBE_ADDRESS_INVALID = gettext_noop("“{address}” is not a valid address for {provider}.")
SUBSCRIBE_NO_CONNECTION = gettext_noop("This tenant has no active {provider} connection.")
SUBSCRIBE_NO_CHANNEL = gettext_noop("Choose at least one channel.")


@dataclass
class CreateResult:
    subscriber: Subscriber
    created: bool
    started: list[Channel]


@transaction.atomic
def subscriber_create_with_consent(
    *,
    provider: str,
    address: str,
    channels: Iterable[Channel],
    consent_at: datetime,
    consent_evidence: str,
    name: str = "",
    language: str = "",
    actor: User | None = None,
    meta: RequestMeta | None = None,
) -> CreateResult:
    """Subscribe a person another system collected (the API; a CRM's list from a stand) with the
    proof of consent it holds: a ledger entry per channel (source "api", the given time and
    evidence). A known address adds the channels to that person; nobody is duplicated."""
    from subscribers.addresses import region_for_timezone
    from subscribers.selectors import current_tenant
    from subscribers.services.imports.validation import normalise_address

    wanted = list(channels)
    if not wanted:
        raise ApplicationError(SUBSCRIBE_NO_CHANNEL)
    region = region_for_timezone(getattr(current_tenant(), "timezone", "") or "Europe/Berlin")
    normalised = normalise_address(provider, address, region)
    if normalised is None:
        raise ApplicationError(SUBSCRIBE_ADDRESS_INVALID, params={"address": address[:80], "provider": provider})
    connection = Connection.objects.filter(provider=provider, status=Connection.Status.ACTIVE).order_by("pk").first()
    if connection is None:
        raise ApplicationError(SUBSCRIBE_NO_CONNECTION, params={"provider": provider})
    contact = contact_get_or_create(connection=connection, address=normalised, display_name=name)
    existing = contact.subscriber_id is not None
    subscriber = subscriber_for_contact(contact=contact, language=language, create=True)
    assert subscriber is not None
    if name and not subscriber.name:
        Subscriber.objects.filter(pk=subscriber.pk).update(name=name[:200])
        subscriber.name = name[:200]
    result = subscription_start(
        subscriber=subscriber, channels=wanted, source=Source.API, source_detail=f"api:{actor.get_username() if actor else ''}",
        evidence=consent_evidence, connection=connection, at=consent_at,
    )  # fmt: skip
    audit_log(
        action="subscriber.created_via_api", actor=actor, target=subscriber, meta=meta,
        target_label=f"subscriber #{subscriber.pk}",
        details={"channels": [c.pk for c in result.started], "provider": provider},
    )  # fmt: skip
    return CreateResult(subscriber=subscriber, created=not existing, started=result.started)
