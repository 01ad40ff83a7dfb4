"""The consent ledger: one append-only row per opt-in, confirmation, opt-out and erasure."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from channels.models import Channel
from messengers.models import Connection
from messengers.outgoing.services import outgoing_event_emit
from subscribers import selectors, texts
from subscribers.models import ConsentEvent, ConsentText, Subscriber

# Party tenants process political opinion: their opt-ins and confirmations are explicit consent.
EXPLICIT_KINDS = frozenset({ConsentEvent.Kind.OPT_IN, ConsentEvent.Kind.CONFIRMATION})


def consent_text_current(*, channel: Channel | None, language: str) -> ConsentText:
    """The consent text a person agrees to now; creates the default text (version 1) the first
    time a tenant without its own text records consent, so every event points at a text."""
    found = selectors.consent_text_for(channel, language)
    if found is not None:
        return found
    base = texts.reply_language(language)
    body = selectors.consent_text_default_body(base)
    try:
        with transaction.atomic():
            created, _ = ConsentText.objects.get_or_create(
                channel=None, language=base, version=1, defaults={"text": body}
            )
    except IntegrityError:  # created concurrently
        created = ConsentText.objects.get(channel=None, language=base, version=1)
    return created


def consent_record(
    *,
    kind: str,
    subscriber: Subscriber | None,
    source: str,
    channel: Channel | None = None,
    source_detail: str = "",
    evidence: str = "",
    connection: Connection | None = None,
    consent_text: ConsentText | None = None,
    at: datetime | None = None,
) -> ConsentEvent:
    explicit = kind in EXPLICIT_KINDS and selectors.is_party_tenant()
    event = ConsentEvent.objects.create(
        subscriber=subscriber,
        channel=channel,
        kind=kind,
        source=source,
        source_detail=source_detail[:120],
        at=at or timezone.now(),
        consent_text=consent_text,
        evidence=evidence[:300],
        connection=connection,
        explicit=explicit,
    )
    if kind != ConsentEvent.Kind.ERASURE:  # erasure: subscriber_erase tells whom (the ledger forgets it)
        subscription_changed_emit(
            kind=kind, subscriber_id=subscriber.pk if subscriber else None, channel=channel, source=source, at=event.at
        )
    return event


def subscription_changed_emit(
    *, kind: str, subscriber_id: int | None, channel: Channel | None, source: str, at: datetime
) -> None:
    """Tell the tenant's outgoing webhooks about an entry of the ledger (in its transaction)."""
    outgoing_event_emit(
        event_type="subscription.changed",
        data=lambda: {
            "kind": kind,
            "subscriber_id": subscriber_id,
            "channel": {"id": channel.pk, "slug": channel.slug} if channel is not None else None,
            "source": source,
            "at": at,
        },
    )
