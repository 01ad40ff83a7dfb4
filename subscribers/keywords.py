"""Keyword commands on inbound messages (settings.MESSENGER_INBOUND_HANDLERS).

`handle_inbound` sees every inbound message after the messenger layer stored it. It answers
commands (START, STOP, HILFE, STATUS [channel], SPRACHE, BEZIRK, EINSTELLUNGEN, ALLE DATEN LÖSCHEN),
Telegram deep links (/start <channel> or /start qr_<poster>), reply-button taps whose payload is
a command, and block signals; everything else returns None and goes on to the next handler
(the inbox). Every command is answered in the person's language through
messengers.services.message_queue, i.e. by a worker after this transaction commits.

A person's consent commands take effect in the order they sent them. The messenger layer applies
a tenant's inbound messages one run at a time, oldest first by the provider's timestamp; a
message can still arrive after a later one of the same person was applied (providers do not
promise order, and a message whose handling failed is retried later). So every consent command
notes what it decided in InboundMessage.handled_detail ("start:3,7", "stop:3", "stop:*"), and a
command that arrives late looks there first: for the channels a later command of the person
decided, the later command stands (an old START does not resubscribe after a STOP, an old STOP
does not end what a later START asked for); for every other channel it still counts. Commands
sent in the same second count in the order they arrived. A block counts as a STOP of everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from django.db.models import Q
from django.utils import formats, timezone, translation

from channels.keywords import match_key
from channels.models import Channel
from channels.selectors import STATE_LABELS, channel_by_word, channel_list_for_connection, channel_primary_keyword
from core.tasks import enqueue_tenant_task
from messengers.adapters.base import InboundMessage as InboundEvent
from messengers.adapters.base import Provider
from messengers.adapters.email_inbound import reply_subject
from messengers.models import Connection, Contact, InboundMessage
from messengers.services import contact_set_status, message_queue
from subscribers import links, selectors, tasks, texts
from subscribers.commands import Command, parse_command
from subscribers.models import Language, Poster, Source, Subscriber
from subscribers.services import (
    subscriber_erase,
    subscriber_for_contact,
    subscriber_set_district,
    subscriber_set_language,
    subscriber_unsubscribe_all,
    subscription_start,
    subscriptions_stop,
)
from subscribers.services.gdpr import ERASURE_REPLY_PURPOSE
from subscribers.services.subscriptions import contact_reactivate

HANDLED: Final = "keyword"
IGNORED: Final = "ignored"
REPLY_PURPOSE: Final = "keyword"
# "STOP BITTE", "STOPP ALLES": words that do not change what STOP means.
STOP_FILLERS: Final = frozenset(
    match_key(w)
    for w in ("ALL", "ALLE", "ALLES", "BITTE", "PLEASE", "NOW", "JETZT", "SOFORT", "DANKE", "THANKS", "EVERYTHING")
)
NO_DISTRICT_WORDS: Final = frozenset(match_key(w) for w in ("KEINER", "KEIN", "KEINEN", "NONE", "ALLE", "ALL"))
# What a consent command decided (InboundMessage.handled_detail): verb, ":", channel ids or "*".
DECIDED_START: Final = "start"
DECIDED_STOP: Final = "stop"
EVERY_CHANNEL: Final = "*"
SUPERSEDED: Final = "superseded: a later command of this person decided it"
LANGUAGE_WORDS: Final = {
    match_key(word): language
    for language, words in (
        (Language.DE, ("DE", "DEUTSCH", "GERMAN")),
        (Language.EN, ("EN", "ENGLISCH", "ENGLISH")),
        (Language.EASY, ("LEICHT", "EINFACH", "LEICHTE")),
    )
    for word in words
}


@dataclass
class Context:
    message: InboundMessage
    connection: Connection
    contact: Contact
    subscriber: Subscriber | None
    language: str
    channels_here: list[Channel]

    @property
    def evidence(self) -> str:
        return f"{self.connection.provider} message {self.message.provider_message_id}"[:300]

    def text(self, key: str, *, about: Channel | None = None, **params: object) -> str:
        """A reply text in the person's language, in the tenant's wording for the channel it is
        `about` (or for the one channel this messenger carries), if it has one."""
        if about is None and len(self.channels_here) == 1:
            about = self.channels_here[0]
        return texts.message(key, self.language, for_channel=about.pk if about is not None else None, **params)

    def channel_list(self) -> str:
        items = [
            self.text("channel_list_item", name=c.name, keyword=channel_primary_keyword(c)) for c in self.channels_here
        ]
        return texts.join(items, self.language)

    def reply(self, text: str) -> None:
        subject = reply_to = ""
        if self.connection.provider == Provider.EMAIL:  # an answer to their mail, threaded under it
            payload = self.message.payload if isinstance(self.message.payload, dict) else {}
            tenant_name = getattr(selectors.current_tenant(), "name", "") or ""
            subject = reply_subject(str(payload.get("subject") or ""), tenant_name)
            reply_to = self.message.provider_message_id
        message_queue(
            connection=self.connection,
            to=self.contact.address,
            text=text,
            purpose=REPLY_PURPOSE,
            contact=self.contact,
            subject=subject,
            reply_to_provider_id=reply_to,
        )

    def person(self) -> Subscriber:
        if self.subscriber is None:
            self.subscriber = subscriber_for_contact(contact=self.contact, language=self.language)
        assert self.subscriber is not None
        return self.subscriber


@dataclass(frozen=True)
class Later:
    """What the person's later commands (already applied) decided; see the module docstring."""

    stopped_everything: bool = False
    started: frozenset[int] = field(default_factory=frozenset)
    stopped: frozenset[int] = field(default_factory=frozenset)

    def decided(self, channel: Channel) -> bool:
        return self.stopped_everything or channel.pk in self.started or channel.pk in self.stopped


def _later(ctx: Context) -> Later:
    contact = ctx.contact
    person = Q(contact=contact)
    if contact.subscriber_id is not None:  # a STOP on one messenger ends the person's subscriptions
        person |= Q(contact__subscriber_id=contact.subscriber_id)
    details = (
        InboundMessage.objects.filter(person, handled_by=HANDLED, sent_at__gt=ctx.message.sent_at)
        .exclude(handled_detail="")
        .values_list("handled_detail", flat=True)
    )
    everything, started, stopped = False, set[int](), set[int]()
    for detail in details:
        verb, _, ids = detail.partition(":")
        if verb == DECIDED_STOP and ids == EVERY_CHANNEL:
            everything = True
        elif verb in (DECIDED_START, DECIDED_STOP):
            (started if verb == DECIDED_START else stopped).update(int(i) for i in ids.split(",") if i.isdigit())
    return Later(everything, frozenset(started), frozenset(stopped))


def _decided(message: InboundMessage, verb: str, channels: list[Channel] | None) -> None:
    ids = EVERY_CHANNEL if channels is None else ",".join(str(channel.pk) for channel in channels)
    detail = f"{verb}:{ids}"
    limit = InboundMessage._meta.get_field("handled_detail").max_length or 200
    if len(detail) > limit:  # drop whole ids: an older STOP may then still end those (the safe side)
        detail = detail[:limit].rsplit(",", 1)[0]
    InboundMessage.objects.filter(pk=message.pk).update(handled_detail=detail)


def _superseded(ctx: Context) -> str:
    """Too late to change anything: no reply (the later command was answered)."""
    InboundMessage.objects.filter(pk=ctx.message.pk).update(handled_detail=SUPERSEDED)
    return IGNORED


def handle_inbound(*, message: InboundMessage, event: InboundEvent) -> str | None:
    kind = message.kind
    if kind == "block":
        return _blocked(message)
    if kind == "start":
        return _run(message, event, Command("start"), deep_link=message.text.strip())
    if kind in ("button", "interactive"):
        payload = message.payload.get("payload") if isinstance(message.payload, dict) else None
        text = str(payload or message.text or "")
    elif kind in ("text", "unblock"):
        text = message.text
    else:
        return None
    command = parse_command(text)
    if command is None:
        return IGNORED if kind == "unblock" else None
    return _run(message, event, command)


def _context(message: InboundMessage, event: InboundEvent, command: Command) -> Context:
    contact = message.contact
    subscriber = subscriber_for_contact(contact=contact, create=False)
    if subscriber is not None:
        language = subscriber.language
    elif command.english:
        language = Language.EN
    else:
        hint = (event.language or "")[:2].lower()
        language = (
            hint
            if hint in ("de", "en")
            else (getattr(selectors.current_tenant(), "default_language", "") or Language.DE)
        )
    return Context(
        message=message, connection=message.connection, contact=contact, subscriber=subscriber, language=language,
        channels_here=channel_list_for_connection(message.connection_id),
    )  # fmt: skip


def _run(message: InboundMessage, event: InboundEvent, command: Command, deep_link: str | None = None) -> str | None:
    ctx = _context(message, event, command)
    if deep_link is not None:
        return _deep_link(ctx, deep_link)
    handler = {
        "start": _start,
        "stop": _stop,
        "help": _help,
        "status": _status,
        "language": _language,
        "district": _district,
        "settings": _settings,
        "erase": _erase,
    }[command.name]
    return handler(ctx, command.args)


# --------------------------------------------------------------------------------------------
# START and deep links
# --------------------------------------------------------------------------------------------
def _subscribe(ctx: Context, channels: list[Channel], source: str, detail: str = "") -> str:
    if not channels:
        ctx.reply(ctx.text("no_channels"))
        return HANDLED
    later = _later(ctx)
    channels = [channel for channel in channels if not later.decided(channel)]
    if not channels:
        return _superseded(ctx)
    _decided(ctx.message, DECIDED_START, channels)
    person = ctx.person()
    contact_reactivate(ctx.contact, "subscribed by keyword")
    result = subscription_start(
        subscriber=person, channels=channels, source=source, source_detail=detail, evidence=ctx.evidence,
        connection=ctx.connection,
    )  # fmt: skip
    tenant = selectors.tenant_name()
    parts: list[str] = []
    for channel in result.started:
        parts.append(
            channel.welcome_text(ctx.language)
            or ctx.text("welcome_default", about=channel, channel=channel.name, tenant=tenant)
        )
        if selectors.is_party_tenant():
            parts.append(ctx.text("explicit_consent_note", tenant=tenant, channel=channel.name))
    parts.extend(ctx.text("already_subscribed", about=channel, channel=channel.name) for channel in result.already)
    first = (result.started or result.already)[0]
    parts.append(ctx.text("welcome_footer", about=first, keyword=channel_primary_keyword(first)))
    ctx.reply("\n\n".join(parts))
    return HANDLED


def _poster(word: str, ctx: Context) -> Poster | None:
    poster = selectors.poster_by_code(word)
    if poster is None or poster.channel not in ctx.channels_here:
        return None
    return poster


def _start(ctx: Context, args: tuple[str, ...]) -> str | None:
    if not args:
        return _subscribe(ctx, ctx.channels_here, Source.KEYWORD)
    channel = channel_by_word(ctx.channels_here, args[0])
    poster: Poster | None = None
    if channel is None:
        poster = _poster(args[0], ctx)
        if poster is None:
            ctx.reply(ctx.text("unknown_channel", word=args[0], channels=ctx.channel_list()))
            return HANDLED
        channel = poster.channel
    elif len(args) > 1:
        candidate = _poster(args[1], ctx)
        poster = candidate if candidate is not None and candidate.channel_id == channel.pk else None
    if poster is not None:
        return _subscribe(ctx, [channel], Source.QR, poster.code)
    return _subscribe(ctx, [channel], Source.KEYWORD)


def _deep_link(ctx: Context, payload: str) -> str:
    if not payload:
        return _subscribe(ctx, ctx.channels_here, Source.DEEP_LINK)
    if payload.startswith(links.POSTER_PAYLOAD_PREFIX):
        poster = _poster(payload[len(links.POSTER_PAYLOAD_PREFIX) :], ctx)
        if poster is not None:
            return _subscribe(ctx, [poster.channel], Source.QR, poster.code)
    channel = next((c for c in ctx.channels_here if c.slug == payload), None) or channel_by_word(
        ctx.channels_here, payload
    )
    if channel is None:
        ctx.reply(ctx.text("unknown_channel", word=payload[:40], channels=ctx.channel_list()))
        return HANDLED
    return _subscribe(ctx, [channel], Source.DEEP_LINK, payload[:120])


# --------------------------------------------------------------------------------------------
# STOP and blocks
# --------------------------------------------------------------------------------------------
def _stop(ctx: Context, args: tuple[str, ...]) -> str | None:
    subscribed = selectors.subscriber_active_channels(ctx.subscriber) if ctx.subscriber is not None else []
    candidates = subscribed + [c for c in ctx.channels_here if c not in subscribed]
    channel = channel_by_word(candidates, args[0]) if args else None
    if channel is None:
        fillers_only = all(match_key(word) in STOP_FILLERS for word in args)
        if len(args) > 1 and not fillers_only:
            return None  # prose that happens to start with "Stop": a person should read it
        return _stop_all(ctx)
    if _later(ctx).decided(channel):
        return _superseded(ctx)
    _decided(ctx.message, DECIDED_STOP, [channel])  # even with nothing to end: an older START must not subscribe
    if channel not in subscribed or ctx.subscriber is None:
        ctx.reply(ctx.text("not_subscribed_one", about=channel, channel=channel.name))
        return HANDLED
    subscriptions_stop(
        subscriber=ctx.subscriber, channels=[channel], source=Source.KEYWORD, evidence=ctx.evidence,
        connection=ctx.connection,
    )  # fmt: skip
    ctx.reply(ctx.text("stopped_one", about=channel, channel=channel.name))
    return HANDLED


def _stop_all(ctx: Context) -> str:
    later = _later(ctx)
    if later.stopped_everything:
        return _superseded(ctx)
    _decided(ctx.message, DECIDED_STOP, None)
    if later.started:
        return _stop_all_but(ctx, later.started)
    if ctx.subscriber is not None:
        subscriber_unsubscribe_all(
            subscriber=ctx.subscriber, source=Source.KEYWORD, evidence=ctx.evidence, connection=ctx.connection
        )
    ctx.contact.refresh_from_db(fields=["status", "status_reason", "status_changed_at"])
    if ctx.contact.status == Contact.Status.ACTIVE:
        contact_set_status(contact=ctx.contact, status=Contact.Status.UNSUBSCRIBED, reason="sent STOP")
    ctx.reply(ctx.text("stopped_all"))
    return HANDLED


def _stop_all_but(ctx: Context, kept: frozenset[int]) -> str:
    """A STOP of everything sent before a START that was applied first: in the order sent, the
    STOP ended everything and the START brought its channels back, so only the others end, and
    the contact stays active for the channels kept."""
    if ctx.subscriber is None:
        return HANDLED
    ending = [c for c in selectors.subscriber_active_channels(ctx.subscriber) if c.pk not in kept]
    if ending:
        subscriptions_stop(
            subscriber=ctx.subscriber, channels=ending, source=Source.KEYWORD, evidence=ctx.evidence,
            connection=ctx.connection,
        )  # fmt: skip
        ctx.reply("\n\n".join(ctx.text("stopped_one", about=channel, channel=channel.name) for channel in ending))
    return HANDLED


def _blocked(message: InboundMessage) -> str:
    """The person blocked us on this messenger (the messenger layer marked the contact blocked).
    If this was their only way to reach them, that is a withdrawal of every subscription; if
    they also get the channels elsewhere (e.g. by e-mail), those continue. No reply: a blocked
    contact cannot receive one."""
    contact = message.contact
    contact.refresh_from_db(fields=["status", "subscriber"])
    if contact.status != Contact.Status.BLOCKED:
        return IGNORED  # an old block: the person wrote to us after it (see messengers.services)
    _decided(message, DECIDED_STOP, None)
    subscriber = subscriber_for_contact(contact=contact, create=False)
    if subscriber is None:
        return HANDLED
    reachable_elsewhere = (
        Contact.objects.filter(subscriber=subscriber, status=Contact.Status.ACTIVE).exclude(pk=contact.pk).exists()
    )
    if not reachable_elsewhere:
        subscriptions_stop(
            subscriber=subscriber, channels=None, source=Source.MESSENGER,
            source_detail=f"blocked on {message.connection.provider}",
            evidence=f"{message.connection.provider} event {message.provider_message_id}"[:300],
            connection=message.connection,
        )  # fmt: skip
    return HANDLED


# --------------------------------------------------------------------------------------------
# Information and settings
# --------------------------------------------------------------------------------------------
def _help(ctx: Context, args: tuple[str, ...]) -> str:
    district_line = ctx.text("help_district_line") if selectors.district_list() else ""
    ctx.reply(ctx.text("help", district_line=district_line, channels=ctx.channel_list()))
    return HANDLED


def _status(ctx: Context, args: tuple[str, ...]) -> str:
    channels = selectors.subscriber_active_channels(ctx.subscriber) if ctx.subscriber is not None else []
    if args:
        return _status_of_channel(ctx, args[0], channels)
    if not channels or ctx.contact.status != Contact.Status.ACTIVE:
        ctx.reply(ctx.text("status_none", channels=ctx.channel_list()))
        return HANDLED
    assert ctx.subscriber is not None
    district = ctx.subscriber.district.name if ctx.subscriber.district else ctx.text("status_no_district")
    ctx.reply(
        ctx.text(
            "status", channels=texts.join([c.name for c in channels], ctx.language), district=district,
            language_name=selectors.language_label(ctx.subscriber.language, ctx.language),
        )
    )  # fmt: skip
    return HANDLED


def _status_of_channel(ctx: Context, word: str, subscribed: list[Channel]) -> str:
    """STATUS <channel>: whether this person gets it here, and an alarm channel's current state.
    The channels asked about are those STOP knows: the person's own and the public ones here."""
    candidates = subscribed + [c for c in ctx.channels_here if c not in subscribed]
    channel = channel_by_word(candidates, word)
    if channel is None:
        ctx.reply(ctx.text("unknown_channel", word=word[:40], channels=ctx.channel_list()))
        return HANDLED
    keyword = channel_primary_keyword(channel)
    receiving = channel in subscribed and ctx.contact.status == Contact.Status.ACTIVE
    parts = [
        ctx.text(
            "status_channel_on" if receiving else "status_channel_off",
            about=channel,
            channel=channel.name,
            keyword=keyword,
        )
    ]
    if channel.is_alarm:
        parts.append(_alarm_state_line(ctx, channel))
    ctx.reply("\n".join(parts))
    return HANDLED


def _alarm_state_line(ctx: Context, channel: Channel) -> str:
    state = STATE_LABELS["en" if ctx.language == Language.EN else "de"][channel.alarm_state]
    if channel.alarm_state_changed_at is None:
        return ctx.text("status_alarm", state=state)
    with translation.override("en" if ctx.language == Language.EN else "de"):
        since = formats.date_format(timezone.localtime(channel.alarm_state_changed_at), "DATETIME_FORMAT")
    return ctx.text("status_alarm_since", state=state, since=since)


def _language(ctx: Context, args: tuple[str, ...]) -> str:
    language = LANGUAGE_WORDS.get(match_key(args[0])) if args else None
    if language is None:
        ctx.reply(ctx.text("language_unknown"))
        return HANDLED
    subscriber_set_language(subscriber=ctx.person(), language=language)
    ctx.language = language
    ctx.reply(ctx.text("language_set"))
    return HANDLED


def _district(ctx: Context, args: tuple[str, ...]) -> str:
    districts = selectors.district_list()
    if not districts:
        ctx.reply(ctx.text("districts_none"))
        return HANDLED
    names = texts.join([d.name for d in districts], ctx.language)
    if not args:
        ctx.reply(ctx.text("district_list", example=districts[0].name.upper(), districts=names))
        return HANDLED
    words = " ".join(args)
    if match_key(words) in NO_DISTRICT_WORDS:
        subscriber_set_district(subscriber=ctx.person(), district=None)
        ctx.reply(ctx.text("district_cleared"))
        return HANDLED
    district = selectors.district_by_word(words, districts)
    if district is None:
        ctx.reply(ctx.text("district_unknown", word=words, districts=names))
        return HANDLED
    subscriber_set_district(subscriber=ctx.person(), district=district)
    ctx.reply(ctx.text("district_set", district=district.name))
    return HANDLED


def _settings(ctx: Context, args: tuple[str, ...]) -> str:
    ctx.reply(ctx.text("settings_link", url=links.preferences_url(ctx.person())))
    return HANDLED


def _erase(ctx: Context, args: tuple[str, ...]) -> str:
    language = ctx.language
    subscriber_erase(
        subscriber=ctx.subscriber, source=Source.KEYWORD, extra_contacts=[ctx.contact], connection=ctx.connection
    )
    # The confirmation is not linked to the (erased) person; its recipient is blanked once sent.
    message_queue(
        connection=ctx.connection, to=ctx.contact.address, text=texts.message("erased", language),
        purpose=ERASURE_REPLY_PURPOSE, contact=None,
    )  # fmt: skip
    enqueue_tenant_task(tasks.outbound_scrub_task)
    return HANDLED
