"""Reads of subscribers: personal links, what the public pages offer, admin lists, GDPR export,
channel exports and the per-tenant roll-up figures.

`unsubscribe_url(subscriber)` and `preferences_url(subscriber)` are the absolute links the
broadcast pipeline puts into e-mail headers (RFC 8058) and footers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils.module_loading import import_string

from channels.keywords import match_key
from channels.models import Channel
from channels.selectors import channel_list_public, channel_primary_keyword
from core import tenancy
from messengers.adapters.base import Provider
from messengers.models import Connection, Contact, InboundMessage, OutboundMessage
from messengers.selectors import connection_shown_provider
from subscribers import links, texts
from subscribers.addresses import looks_like_phone, phone_to_e164
from subscribers.models import (
    ConsentEvent,
    ConsentText,
    District,
    Language,
    Poster,
    Source,
    Subscriber,
    Subscription,
)

PROVIDER_LABELS = {
    Provider.WHATSAPP: "WhatsApp",
    Provider.TELEGRAM: "Telegram",
    Provider.SMS: "SMS",
    Provider.EMAIL: "E-Mail",
    Provider.SANDBOX: "Sandbox",
}
# Messengers a QR code can open directly (e-mail and web posters open the subscribe page).
QR_PROVIDERS = (Provider.WHATSAPP, Provider.TELEGRAM, Provider.SMS)
POSTER_PROVIDERS = ("whatsapp", "telegram", "sms", "web")


def unsubscribe_url(subscriber: Subscriber) -> str:
    """Absolute one-click unsubscribe URL (RFC 8058 POST target; a GET shows a confirmation page)."""
    return links.unsubscribe_url(subscriber)


def preferences_url(subscriber: Subscriber) -> str:
    """Absolute URL of the person's preference page (signed; no login)."""
    return links.preferences_url(subscriber)


def current_tenant() -> Any:
    """The tenant whose schema is active (core.tenancy.current_tenant)."""
    return tenancy.current_tenant()


def is_party_tenant() -> bool:
    return getattr(current_tenant(), "kind", "") == "party"


def tenant_name() -> str:
    return str(getattr(current_tenant(), "name", "") or "")


# --------------------------------------------------------------------------------------------
# Contacts and people
# --------------------------------------------------------------------------------------------
def subscriber_contacts(subscriber: Subscriber) -> list[Contact]:
    return list(Contact.objects.filter(subscriber=subscriber).select_related("connection").order_by("pk"))


def subscriber_active_channels(subscriber: Subscriber) -> list[Channel]:
    return list(
        Channel.objects.filter(subscriptions__subscriber=subscriber, subscriptions__status=Subscription.Status.ACTIVE)
        .order_by("position", "name")
        .distinct()
    )


def district_list() -> list[District]:
    return list(District.objects.order_by("position", "name"))


def district_by_word(words: str, districts: list[District] | None = None) -> District | None:
    key = match_key(words)
    if not key:
        return None
    for district in districts if districts is not None else district_list():
        names = {match_key(district.name), match_key(district.slug.replace("-", " "))}
        names |= {match_key(alias) for alias in district.aliases}
        if key in names or key.replace(" ", "") in {n.replace(" ", "") for n in names}:
            return district
    return None


POSTER_CODE = re.compile(r"[A-Z0-9]{1,12}", re.ASCII)  # generated codes use a part of this


def poster_by_code(code: str) -> Poster | None:
    code = code.strip().upper()
    if not POSTER_CODE.fullmatch(code):  # also keeps NUL bytes, which PostgreSQL refuses, out
        return None
    return Poster.objects.select_related("channel").filter(code=code).first()


def consent_text_for(channel: Channel | None, language: str) -> ConsentText | None:
    """The newest consent text for a channel (or the general one) in a language, if any exists."""
    base = texts.reply_language(language)
    for channel_filter in ((Q(channel=channel) if channel is not None else None), Q(channel__isnull=True)):
        if channel_filter is None:
            continue
        for lang in dict.fromkeys([language, base]):
            found = ConsentText.objects.filter(channel_filter, language=lang).order_by("-version").first()
            if found is not None:
                return found
    return None


def consent_text_default_body(language: str) -> str:
    key = "consent_party" if is_party_tenant() else "consent_default"
    return texts.message(key, language, tenant=tenant_name())


def consent_text_shown(language: str) -> str:
    """The general consent text the subscribe page shows (stored version or the default)."""
    found = consent_text_for(None, language)
    return found.text if found is not None else consent_text_default_body(language)


# --------------------------------------------------------------------------------------------
# The public subscribe page
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MessengerOffer:
    provider: str
    label: str
    connection_id: int
    address: str  # what the person sends to (number, @bot), "" when unknown (sandbox)
    link: str  # wa.me / t.me / sms: link, "" when there is no public address
    keyword_text: str  # START FEINSTAUB [CODE]
    poster_code: str = ""  # the poster the visitor came from, when it is for this channel
    demo: bool = False  # a DEMO_MODE sandbox that looks like `provider`; its link opens the simulator

    @property
    def has_qr(self) -> bool:
        return bool(self.link) and self.provider in QR_PROVIDERS


@dataclass(frozen=True)
class ChannelOffer:
    channel: Channel
    keyword: str
    messengers: list[MessengerOffer] = field(default_factory=list)
    email_connection_id: int | None = None
    selected: bool = False
    email_demo: bool = False  # the e-mail form delivers to the simulator (a DEMO_MODE look-alike)

    @property
    def sandbox(self) -> MessengerOffer | None:
        return next((m for m in self.messengers if m.provider == Provider.SANDBOX), None)


def channel_offers(*, poster: Poster | None = None, selected_slug: str = "") -> list[ChannelOffer]:
    """Every public channel with the ways to subscribe to it (active connections only)."""
    active = Connection.objects.filter(status=Connection.Status.ACTIVE).order_by("provider", "pk")
    channels = channel_list_public().prefetch_related(Prefetch("connections", queryset=active))
    offers: list[ChannelOffer] = []
    for channel in channels:
        keyword = channel_primary_keyword(channel)
        code = poster.code if poster is not None and poster.channel_id == channel.pk else ""
        messengers: list[MessengerOffer] = []
        email_connection: int | None = None
        email_demo = False
        for conn in channel.connections.all():
            shown = connection_shown_provider(conn)
            demo = shown != conn.provider
            if shown == Provider.EMAIL:
                if email_connection is None or (email_demo and not demo):  # a real one wins
                    email_connection, email_demo = conn.pk, demo
                continue
            link = links.messenger_link(conn, keyword=keyword, channel_slug=channel.slug, poster_code=code)
            address = ""
            if conn.provider == Provider.TELEGRAM and links.telegram_username(conn):
                address = "@" + links.telegram_username(conn)
            elif conn.provider in (Provider.WHATSAPP, Provider.SMS) and links.phone_digits(conn):
                address = "+" + links.phone_digits(conn)
            messengers.append(
                MessengerOffer(
                    provider=shown, label=PROVIDER_LABELS.get(Provider(shown), shown),
                    connection_id=conn.pk, address=address, link=link,
                    keyword_text=links.keyword_message(keyword, code), poster_code=code, demo=demo,
                )
            )  # fmt: skip
        selected = channel.slug == selected_slug or (poster is not None and poster.channel_id == channel.pk)
        offers.append(ChannelOffer(channel, keyword, messengers, email_connection, selected, email_demo))
    return offers


def channel_offer(slug: str) -> ChannelOffer | None:
    return next((offer for offer in channel_offers() if offer.channel.slug == slug), None)


def email_connection_for(channel_ids: list[int]) -> Connection | None:
    """The active e-mail connection carrying the chosen public channels (the first by id); in
    DEMO_MODE, when there is none, a sandbox that looks like e-mail (it delivers to the simulator)."""
    candidates = Connection.objects.filter(
        status=Connection.Status.ACTIVE, channels__pk__in=channel_ids, channels__is_public=True,
        channels__is_active=True,
    ).order_by("pk")  # fmt: skip
    real = candidates.filter(provider=Provider.EMAIL).first()
    if real is not None or not settings.DEMO_MODE:
        return real
    look = candidates.filter(provider=Provider.SANDBOX, demo_presents_as=Provider.EMAIL.value).first()
    return look if look is not None and connection_shown_provider(look) == Provider.EMAIL else None


# --------------------------------------------------------------------------------------------
# The preference page
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreferenceChannel:
    channel: Channel
    subscribed: bool


def preference_channels(subscriber: Subscriber) -> list[PreferenceChannel]:
    """Public channels the person can receive on one of their messengers, plus anything they
    are subscribed to already."""
    connection_ids = set(
        Contact.objects.filter(subscriber=subscriber).exclude(status=Contact.Status.BLOCKED)
        .values_list("connection_id", flat=True)
    )  # fmt: skip
    subscribed = set(
        Subscription.objects.filter(subscriber=subscriber, status=Subscription.Status.ACTIVE).values_list(
            "channel_id", flat=True
        )
    )
    channels = Channel.objects.filter(
        Q(is_public=True, is_active=True, connections__pk__in=connection_ids) | Q(pk__in=subscribed)
    ).distinct().order_by("position", "name")  # fmt: skip
    return [PreferenceChannel(channel, channel.pk in subscribed) for channel in channels]


def mask_address(address: str) -> str:
    """+4917012345678 → +49 … 5678; anna@example.org → a…@example.org (never the whole address)."""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}…@{domain}"
    if len(address) <= 4:
        return "…"
    return f"{address[:3]} … {address[-4:]}"


# --------------------------------------------------------------------------------------------
# Admin
# --------------------------------------------------------------------------------------------
def subscriber_list_admin() -> QuerySet[Subscriber]:
    """The changelist: district joined, contacts and active subscriptions prefetched — the query
    count does not depend on the page size."""
    contacts = (
        Contact.objects.select_related("connection")
        .only("pk", "subscriber_id", "address", "status", "connection__provider", "connection__name")
        .order_by("pk")
    )
    subscriptions = (
        Subscription.objects.filter(status=Subscription.Status.ACTIVE)
        .select_related("channel")
        .only("pk", "subscriber_id", "channel__name", "channel__position")
        .order_by("channel__position", "channel__name")
    )
    return Subscriber.objects.select_related("district").prefetch_related(
        Prefetch("contacts", queryset=contacts),
        Prefetch("subscriptions", queryset=subscriptions, to_attr="active_subscriptions"),
    )


def subscriber_search(queryset: QuerySet[Subscriber], term: str) -> QuerySet[Subscriber]:
    """Admin search: "#123" an id; a phone number (any common spelling), e-mail address or
    Telegram chat id matches contacts exactly (through the (connection, address) unique index,
    hence the list of connection ids); anything else searches the beginnings of the words of
    names (full-text index), so "mül" finds "Anna Müller" but "ller" does not."""
    term = term.strip()[:200]
    if not term:
        return queryset
    if term.startswith("#") and term[1:].isascii() and term[1:].isdigit():  # not "#²"
        return queryset.filter(pk=int(term[1:]))
    addresses: set[str] = set()
    if "@" in term and " " not in term:
        addresses = {term, term.lower()}
    elif looks_like_phone(term):
        digits = re.sub(r"\D", "", term)
        addresses = {term, digits, f"-{digits}", f"+{digits}"}
        e164 = phone_to_e164(term)
        if e164:
            addresses.add(e164)
    if addresses:
        connection_ids = list(Connection.objects.values_list("pk", flat=True))
        contacts = Contact.objects.filter(
            connection_id__in=connection_ids, address__in=sorted(addresses), subscriber__isnull=False
        )
        return queryset.filter(pk__in=contacts.values("subscriber_id"))
    words = [w for w in (re.sub(r"[^\w]", "", word) for word in term.split()) if w][:6]
    if not words:
        return queryset.none()
    # every word a prefix ("Anna Mül" finds "Anna Müller"), through the name_search GIN index
    query = " & ".join(f"{word}:*" for word in words)
    return queryset.alias(name_search=SearchVector("name", config="simple")).filter(
        name_search=SearchQuery(query, search_type="raw", config="simple")
    )


def subscription_counts_by_channel(channel_ids: list[int]) -> dict[int, dict[str, int]]:
    """{channel id: {status: count}} for active and pending subscriptions, in one grouped query
    over the subscriptions of these channels only (the channel admin asks for one page of them)."""
    counts: dict[int, dict[str, int]] = {pk: {} for pk in channel_ids}
    rows = (
        Subscription.objects.filter(
            channel_id__in=channel_ids, status__in=[Subscription.Status.ACTIVE, Subscription.Status.PENDING]
        )
        .order_by()
        .values_list("channel_id", "status")
        .annotate(n=Count("pk"))
    )
    for channel_id, status, number in rows:
        counts[channel_id][status] = number
    return counts


def consent_events_admin() -> QuerySet[ConsentEvent]:
    return ConsentEvent.objects.select_related("channel", "consent_text", "connection", "subscriber")


# --------------------------------------------------------------------------------------------
# GDPR: everything we hold about one person
# --------------------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def subscriber_personal_data(subscriber: Subscriber) -> dict[str, Any]:
    """The person's data as one JSON-safe document (Art. 15/20 GDPR)."""
    contacts = subscriber_contacts(subscriber)
    contact_ids = [c.pk for c in contacts]
    subscriptions = Subscription.objects.filter(subscriber=subscriber).select_related("channel").order_by("pk")
    events = (
        ConsentEvent.objects.filter(subscriber=subscriber)
        .select_related("channel", "consent_text")
        .order_by("at", "pk")
    )
    inbound = InboundMessage.objects.filter(contact_id__in=contact_ids).order_by("received_at", "pk")
    outbound = OutboundMessage.objects.filter(contact_id__in=contact_ids).order_by("created_at", "pk")
    by_contact = {c.pk: c for c in contacts}
    sections = {
        name: import_string(path)(subscriber.pk) for name, path in settings.SUBSCRIBER_PERSONAL_DATA_SECTIONS.items()
    }
    return {
        "organisation": tenant_name(),
        "subscriber": {
            "id": subscriber.pk,
            "name": subscriber.name,
            "language": subscriber.language,
            "district": subscriber.district.name if subscriber.district else None,
            "interests": list(subscriber.tags),
            "status": subscriber.status,
            "external_reference": subscriber.external_ref,
            "created_at": _iso(subscriber.created_at),
        },
        "contacts": [
            {
                "messenger": c.connection.provider,
                "connection": c.connection.name,
                "address": c.address,
                "name": c.display_name,
                "status": c.status,
                "status_reason": c.status_reason,
                "last_message_from_you": _iso(c.last_inbound_at),
                "created_at": _iso(c.created_at),
            }
            for c in contacts
        ],
        "subscriptions": [
            {
                "channel": s.channel.name,
                "status": s.status,
                "source": s.source,
                "source_detail": s.source_detail,
                "subscribed_at": _iso(s.subscribed_at),
                "confirmed_at": _iso(s.confirmed_at),
                "unsubscribed_at": _iso(s.unsubscribed_at),
            }
            for s in subscriptions
        ],
        "consent_events": [
            {
                "at": _iso(e.at),
                "kind": e.kind,
                "channel": e.channel.name if e.channel else None,
                "source": e.source,
                "source_detail": e.source_detail,
                "evidence": e.evidence,
                "explicit": e.explicit,
                "consent_text": e.consent_text.text if e.consent_text else None,
                "consent_text_version": e.consent_text.version if e.consent_text else None,
            }
            for e in events
        ],
        "messages_from_you": [
            {
                "at": _iso(m.sent_at),
                "messenger": by_contact[m.contact_id].connection.provider,
                "kind": m.kind,
                "text": m.text,
            }
            for m in inbound
        ],
        "messages_to_you": [
            {
                "at": _iso(m.created_at),
                "messenger": by_contact[m.contact_id].connection.provider if m.contact_id in by_contact else None,
                "purpose": m.purpose,
                "text": m.text,
                "status": m.status,
            }
            for m in outbound
        ],
        **sections,
    }


# --------------------------------------------------------------------------------------------
# Export of a channel's subscribers
# --------------------------------------------------------------------------------------------
EXPORT_COLUMNS = [
    "subscriber_id", "name", "language", "district", "interests", "whatsapp", "telegram", "sms", "email",
    "sandbox", "subscribed_at", "confirmed_at", "source", "source_detail",
]  # fmt: skip
EXPORT_BATCH = 2000


def channel_subscriber_rows(channel: Channel) -> Iterator[list[str]]:
    """Rows of the channel's active subscribers, streamed in keyset batches (never all in memory)."""
    last_id = 0
    while True:
        batch = list(
            Subscription.objects.filter(channel=channel, status=Subscription.Status.ACTIVE, subscriber_id__gt=last_id)
            .select_related("subscriber__district")
            .order_by("subscriber_id")[:EXPORT_BATCH]
        )
        if not batch:
            return
        ids = [s.subscriber_id for s in batch]
        addresses: dict[int, dict[str, list[str]]] = {}
        for subscriber_id, provider, address in Contact.objects.filter(
            subscriber_id__in=ids, status=Contact.Status.ACTIVE
        ).values_list("subscriber_id", "connection__provider", "address"):
            addresses.setdefault(subscriber_id, {}).setdefault(provider, []).append(address)
        for sub in batch:
            person = sub.subscriber
            found = addresses.get(sub.subscriber_id, {})
            yield [
                str(person.pk), person.name, person.language, person.district.name if person.district else "",
                ", ".join(person.tags),
                *(" ".join(found.get(p, [])) for p in ("whatsapp", "telegram", "sms", "email", "sandbox")),
                _iso(sub.subscribed_at) or "", _iso(sub.confirmed_at) or "", sub.source, sub.source_detail,
            ]  # fmt: skip
        last_id = batch[-1].subscriber_id


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def subscriber_rollup() -> dict[str, int]:
    """Per-tenant figures for the operator overview (settings.TENANT_ROLLUP_HOOKS)."""
    active_people = (
        Subscription.objects.filter(status=Subscription.Status.ACTIVE).values("subscriber_id").distinct().count()
    )
    return {
        "subscribers_active": active_people,
        "subscriptions_active": Subscription.objects.filter(status=Subscription.Status.ACTIVE).count(),
        "channels_public": Channel.objects.filter(is_public=True, is_active=True).count(),
    }


@dataclass(frozen=True)
class SubscriberCount:
    """People with at least one active subscription, now and at an earlier moment."""

    now: int
    then: int

    @property
    def change(self) -> int:
        return self.now - self.then


def subscriber_count_change(*, since: datetime) -> SubscriberCount:
    """People subscribed now and at `since`, in one query (the start page's figure and its change).

    A subscription counted at `since` was active then: started (subscribed, or confirmed by
    double opt-in, which restarts subscribed_at) at or before `since` and either still active or
    ended after it. Unconfirmed double opt-ins count at neither moment. A re-subscription restarts
    subscribed_at, so a person who left and came back within the window counts as new."""
    active = Q(status=Subscription.Status.ACTIVE)
    active_then = Q(subscribed_at__lte=since) & (
        active | Q(status=Subscription.Status.UNSUBSCRIBED, unsubscribed_at__gt=since)
    )
    figures = Subscription.objects.aggregate(
        now=Count("subscriber_id", distinct=True, filter=active),
        then=Count("subscriber_id", distinct=True, filter=active_then),
    )
    return SubscriberCount(now=figures["now"], then=figures["then"])


def language_label(language: str, reply_in: str) -> str:
    key = f"language_name_{language}" if language in Language.values else "language_name_de"
    return texts.message(key, reply_in)


def subscription_exists_from_website() -> bool:
    """Whether anyone has subscribed through the subscribe page's form or the widget, i.e. the
    page is reachable from the tenant's website (a step of the admin start page)."""
    return Subscription.objects.filter(source__in=[Source.WEB_FORM, Source.WIDGET]).exists()
