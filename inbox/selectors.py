"""Reads of the shared inbox: the list with its filters, the thread, what changed since the
page last asked, and what an agent may see of the person."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection
from django.db.models import BooleanField, Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import formats, timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from broadcasts.pipeline import WHATSAPP_WINDOW
from inbox.hours import HoursError, is_open, next_opening, parse_holidays, parse_hours
from inbox.models import OPEN_STATES, CannedReply, Conversation, Entry, InboxSettings
from messengers.adapters.base import Provider
from messengers.adapters.email_inbound import reply_subject
from messengers.media import inbound_media_ref
from subscribers.models import ConsentEvent, Subscription
from subscribers.selectors import current_tenant


def reply_needs_template(conversation: Conversation) -> bool:
    """WhatsApp takes free text only within 24 hours of the person's last message; after that
    only an approved template. Every other messenger (and the sandbox) takes free text."""
    if conversation.connection.provider != Provider.WHATSAPP:
        return False
    last = conversation.contact.last_inbound_at
    return last is None or last < timezone.now() - WHATSAPP_WINDOW


@dataclass(frozen=True)
class Threading:
    subject: str = ""
    reply_to_provider_id: str = ""


def reply_threading(conversation: Conversation) -> Threading:
    """An e-mail answer answers the person's last e-mail: "Re: <its subject>" and its
    Message-ID (In-Reply-To), so their mail program threads it. Other messengers: nothing."""
    if conversation.connection.provider != Provider.EMAIL:
        return Threading()
    last = (
        Entry.objects.filter(conversation=conversation, kind=Entry.Kind.INBOUND, inbound__isnull=False)
        .select_related("inbound")
        .order_by("-created_at", "-id")
        .first()
    )
    message = last.inbound if last is not None else None
    subject = ""
    if message is not None and isinstance(message.payload, dict):
        subject = str(message.payload.get("subject") or "")
    return Threading(
        subject=reply_subject(subject, getattr(current_tenant(), "name", "") or ""),
        reply_to_provider_id=message.provider_message_id if message is not None else "",
    )


def mask_address(address: str) -> str:
    """`+49 171 ••• ••12` for agents who may not see numbers; e-mail addresses keep their first
    letter and domain; anything else keeps its last two characters."""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}•••@{domain}"
    compact = "".join(c for c in address if c not in " -/()")
    digits = compact.lstrip("+")
    if compact.startswith("+") and digits.isdigit() and len(digits) >= 8:
        return f"+{digits[:2]} {digits[2:5]} ••• ••{digits[-2:]}"
    if len(address) <= 4:
        return "••••"
    return "•••" + address[-2:]


def contact_shown(conversation: Conversation, user: Any) -> tuple[str, str]:
    """(name, address) of the person as this user may see them."""
    contact = conversation.contact
    if user.has_perm("inbox.view_contact_details"):
        return contact.display_name, contact.address
    name = contact.display_name[:1] + "." if contact.display_name else ""
    return name, mask_address(contact.address)


def conversation_placeholders(conversation: Conversation) -> dict[str, str]:
    """Values for `{{ name }}` and `{{ channel }}` in canned replies."""
    contact = conversation.contact
    subscriber = contact.subscriber
    name = (subscriber.name if subscriber is not None else "") or contact.display_name
    channel = ""
    if conversation.answers_broadcast is not None:
        first = conversation.answers_broadcast.channels.order_by("name").first()
        channel = first.name if first is not None else ""
    if not channel and subscriber is not None:
        subscription = subscriber.subscriptions.filter(status="active").select_related("channel").first()
        channel = subscription.channel.name if subscription is not None else ""
    return {"name": name, "channel": channel}


PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def fill_placeholders(body: str, values: dict[str, str]) -> str:
    """`{{ name }}`-style placeholders replaced by `values` (plain substitution, no template
    language: canned replies are data an admin typed, never code); unknown ones stay."""
    return PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), body)


def canned_replies_for(conversation: Conversation, limit: int = 100) -> list[dict[str, str]]:
    """Every canned reply, filled in for this conversation (the placeholders are read once)."""
    values = conversation_placeholders(conversation)
    return [
        {"title": canned.title, "text": fill_placeholders(canned.body, values)}
        for canned in CannedReply.objects.all()[:limit]
    ]


@dataclass(frozen=True)
class ListFilters:
    status: str = "open"  # open / waiting / closed / all ("open" means open and waiting)
    mine_of: int | None = None  # a user id: only conversations assigned to them
    unassigned: bool = False
    department_id: int | None = None
    label: str = ""
    connection_id: int | None = None
    provider: str = ""
    channel_id: int | None = None  # people subscribed (active) to this channel
    query: str = ""  # full text over the thread (German configuration)


def conversation_list(filters: ListFilters) -> QuerySet[Conversation]:
    """The inbox list: the longest-waiting first, then the most recently active."""
    rows = Conversation.objects.select_related("contact", "connection", "assignee", "department")
    if filters.status == "open":
        rows = rows.filter(status__in=OPEN_STATES)
    elif filters.status in Conversation.Status.values:
        rows = rows.filter(status=filters.status)
    if filters.mine_of is not None:
        rows = rows.filter(assignee_id=filters.mine_of)
    if filters.unassigned:
        rows = rows.filter(assignee__isnull=True)
    if filters.department_id is not None:
        rows = rows.filter(department_id=filters.department_id)
    if filters.label:
        rows = rows.filter(labels__contains=[filters.label])
    if filters.connection_id is not None:
        rows = rows.filter(connection_id=filters.connection_id)
    if filters.provider:
        rows = rows.filter(connection__provider=filters.provider)
    if filters.channel_id is not None:
        subscribed = Subscription.objects.filter(
            subscriber_id=OuterRef("contact__subscriber_id"), channel_id=filters.channel_id, status="active"
        )
        rows = rows.filter(Exists(subscribed))
    query = filters.query.replace("\x00", "").strip()[:200]
    if query:
        matching = Entry.objects.annotate(search=SearchVector("text", config="german")).filter(
            conversation_id=OuterRef("pk"), search=SearchQuery(query, config="german", search_type="websearch")
        )
        rows = rows.filter(Exists(matching))
    return rows.order_by("waiting_since", "-last_activity_at", "-pk")


def conversation_thread(conversation: Conversation) -> QuerySet[Entry]:
    return conversation.entries.select_related("inbound__connection", "outbound", "author").order_by("created_at", "id")


def inbound_entry(pk: int) -> Entry | None:
    """A thread entry that is a message from the person, with its message and connection."""
    return (
        Entry.objects.select_related("inbound__connection")
        .filter(pk=pk, kind=Entry.Kind.INBOUND, inbound__isnull=False)
        .first()
    )


# PostgreSQL's text form of a snapshot: "xmin:xmax:xip,xip,…"
SNAPSHOT_TEXT = re.compile(r"\A\d{1,20}:\d{1,20}:(\d{1,20}(,\d{1,20})*)?\Z")
SNAPSHOT_MAX_CHARS = 20_000


def inbox_cursor() -> str:
    """Where the next poll starts: this moment's snapshot (which transactions had committed).
    The next poll names exactly the changes that snapshot could not see: those committed since,
    and those of transactions still running then. Other databases' long transactions on the same
    server hold back the snapshot's xmin but do not make a change be named again."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_snapshot()::text")
        row = cursor.fetchone()
    return str(row[0])


def poll_cursor_parse(value: str) -> str | None:
    """A cursor the page sent back, if it is one (else None: the page only learns where to start)."""
    if len(value) > SNAPSHOT_MAX_CHARS or not SNAPSHOT_TEXT.match(value):
        return None
    xmin_text, xmax_text, xip_text = value.split(":")
    xmin, xmax = int(xmin_text), int(xmax_text)
    running = [int(xid) for xid in xip_text.split(",") if xid]
    # what PostgreSQL's pg_snapshot input accepts (anything else would be a database error)
    if not 0 < xmin <= xmax < 2**63 or running != sorted(running) or any(not xmin <= x < xmax for x in running):
        return None
    return value


def conversations_changed_since(cursor: str) -> list[int]:
    """Ids of conversations changed by transactions that the snapshot `cursor` could not see (the
    page's cheap poll: the index on change_xid narrows it to transactions from the snapshot's xmin
    on); take the next cursor with inbox_cursor() BEFORE calling this."""
    xmin = int(cursor.split(":", 1)[0])
    seen = RawSQL("pg_visible_in_snapshot(change_xid::text::xid8, %s::pg_snapshot)", (cursor,), BooleanField())
    changed = Conversation.objects.filter(change_xid__gte=xmin).alias(seen=seen).filter(seen=False)
    return list(changed.values_list("pk", flat=True)[:500])


def unanswered_count() -> int:
    """Conversations waiting for the team (the navigation badge)."""
    return Conversation.objects.filter(status=Conversation.Status.OPEN).count()


CONSENT_SHOWN = 5


def person_panel(conversation: Conversation) -> dict[str, Any]:
    """The side panel: the person's subscriptions (channel, since, status), language, and the
    latest entries of their consent ledger (what they agreed to, when, how)."""
    subscriber = conversation.contact.subscriber
    if subscriber is None:
        return {"subscriber": None, "subscriptions": [], "consent": []}
    consent = list(
        ConsentEvent.objects.filter(subscriber=subscriber)
        .select_related("channel")
        .order_by("-at", "-id")[:CONSENT_SHOWN]
    )
    subscriptions = list(
        subscriber.subscriptions.select_related("channel")
        .order_by("channel__name")
        .values("channel__name", "status", "subscribed_at", "confirmed_at", "unsubscribed_at")
    )
    return {"subscriber": subscriber, "subscriptions": subscriptions, "consent": consent}


def inbox_agents() -> QuerySet[Any]:
    """People a conversation can be assigned to (active, with the inbox permission)."""
    permission = Permission.objects.filter(content_type__app_label="inbox", codename="view_conversation")
    return (
        get_user_model()
        .objects.filter(is_active=True, is_staff=True)
        .filter(Q(groups__permissions__in=permission) | Q(user_permissions__in=permission) | Q(is_superuser=True))
        .distinct()
        .order_by("username")
    )


KIND_LABELS = {
    "image": _("Image"),
    "video": _("Video"),
    "audio": _("Voice message"),
    "document": _("Document"),
    "sticker": _("Sticker"),
    "location": _("Location"),
    "contacts": _("Contact card"),
    "reaction": _("Reaction"),
    "button": _("Button tapped"),
    "interactive": _("Button tapped"),
    "unknown": _("A message type the messenger does not describe"),
}


# What the media view answers with its own content type (anything else is a download as
# application/octet-stream): images, audio and video that browsers show without running anything.
# Never SVG (it can carry scripts) or HTML.
INLINE_MEDIA_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/gif",
        "audio/ogg",
        "audio/mpeg",
        "audio/aac",
        "audio/amr",
        "audio/mp4",
        "video/mp4",
    }
)
MEDIA_KINDS = frozenset({"image", "sticker", "audio", "video", "document"})


def media_type(value: str) -> str:
    """`image/jpeg` for `Image/JPEG; charset=x`: the bare, lower-case type."""
    return value.split(";")[0].strip().lower()


def _media_display(kind: str, mime_type: str) -> str:
    """How the thread shows a file: image, audio, video or file (a download link). An undeclared
    type counts as the usual one for the kind; the media view still checks what arrives."""
    mime = media_type(mime_type)
    if kind in ("image", "sticker") and (not mime or (mime.startswith("image/") and mime in INLINE_MEDIA_TYPES)):
        return "image"
    if kind == "audio" and (not mime or (mime.startswith("audio/") and mime in INLINE_MEDIA_TYPES)):
        return "audio"
    if kind == "video" and (not mime or mime == "video/mp4"):
        return "video"
    return "file"


def _coordinate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return float("nan")
    try:
        return float(value)
    except ValueError:
        return float("nan")


def entry_view(entry: Entry) -> dict[str, Any]:
    """What the thread shows for one entry: never fails on odd payloads (unknown kinds, missing
    or malformed coordinates, media without ids). A file is shown by kind (`media.display`):
    images and stickers as thumbnails, voice as a player, documents as a download link; its
    bytes come from the media view (inbox_media), fetched from the provider when opened."""
    shown: dict[str, Any] = {"entry": entry, "kind_label": "", "map_url": "", "status": "", "media": None}
    inbound = entry.inbound
    if inbound is not None and inbound.kind != "text":
        shown["kind_label"] = KIND_LABELS.get(inbound.kind, KIND_LABELS["unknown"])
        payload = inbound.payload if isinstance(inbound.payload, dict) else {}
        lat, lon = _coordinate(payload.get("latitude")), _coordinate(payload.get("longitude"))
        if -90 <= lat <= 90 and -180 <= lon <= 180:
            shown["map_url"] = (
                f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map=17/{lat:.6f}/{lon:.6f}"
            )
        ref = inbound_media_ref(inbound) if inbound.kind in MEDIA_KINDS else None
        if ref is not None:
            shown["media"] = {
                "display": _media_display(inbound.kind, ref.mime_type),
                "filename": ref.filename,
                "size": ref.size,
                "voice": ref.voice,
            }
    if entry.outbound is not None:
        shown["status"] = entry.outbound.get_status_display()
        shown["failed"] = entry.outbound.status == "failed"
        shown["error"] = entry.outbound.error_code
    return shown


def inbox_settings() -> InboxSettings:
    """This tenant's inbox settings: the one row, or the defaults (unsaved) while there is none."""
    found = InboxSettings.objects.filter(key="inbox").first()
    return found if found is not None else InboxSettings()


def office_open_now(
    settings_row: InboxSettings, tenant: Any, now: datetime | None = None
) -> tuple[bool, datetime | None]:
    """(open now?, next opening in local time) by the tenant's office hours and time zone.
    Settings that no longer parse (edited in the database) count as always open."""
    try:
        hours = parse_hours(settings_row.office_hours)
        holidays = set(parse_holidays(settings_row.holidays))
    except HoursError:
        return True, None
    try:
        zone = ZoneInfo(getattr(tenant, "timezone", "") or "Europe/Berlin")
    except (ValueError, ZoneInfoNotFoundError):
        zone = ZoneInfo("Europe/Berlin")
    local = (now or timezone.now()).astimezone(zone)
    if is_open(hours, holidays, local):
        return True, None
    return False, next_opening(hours, holidays, local)


def _language(conversation: Conversation, tenant: Any) -> str:
    subscriber = conversation.contact.subscriber
    language = subscriber.language if subscriber is not None else ""
    return language or getattr(tenant, "default_language", "") or "de"


DEFAULT_AUTO_REPLY = {
    "de": "Vielen Dank für Ihre Nachricht! Unser Team ist gerade nicht erreichbar und antwortet ab {{ next_open }}.",
    "en": "Thank you for your message! Our team is not available right now and will answer from {{ next_open }}.",
}


def auto_reply_text(conversation: Conversation, now: datetime | None = None) -> str:
    """The automatic answer due now, or "" (office open, no hours set, or already answered)."""
    if conversation.auto_replied_at is not None:
        return ""
    settings_row = inbox_settings()
    if not settings_row.office_hours.strip():
        return ""
    tenant = current_tenant()
    open_now, next_open = office_open_now(settings_row, tenant, now)
    if open_now:
        return ""
    language = _language(conversation, tenant)
    configured = settings_row.auto_reply_en if language == "en" else settings_row.auto_reply_de
    text = configured.strip() or DEFAULT_AUTO_REPLY["en" if language == "en" else "de"]
    with translation.override(language):
        when = (
            formats.date_format(next_open, "l, j. F, H:i") + (" Uhr" if language == "de" else "")
            if next_open is not None
            else gettext("as soon as possible")
        )
    return re.sub(r"\{\{\s*next_open\s*\}\}", when, text)


def forward_question_draft(conversation: Conversation) -> str:
    """What the person asked since our last answer (the forward form starts with it)."""
    texts: list[str] = []
    for kind, text in conversation.entries.order_by("-created_at", "-id").values_list("kind", "text")[:20]:
        if kind in (Entry.Kind.REPLY, Entry.Kind.AUTO_REPLY) and texts:
            break
        if kind == Entry.Kind.INBOUND and text:
            texts.append(text)
    return "\n".join(reversed(texts))


# --------------------------------------------------------------------------------------------
# Answer many at once: open conversations whose last message says much the same
# --------------------------------------------------------------------------------------------
GROUP_SCAN_LIMIT = 500  # the most recently active open conversations that are compared
GROUP_SIMILARITY = 0.5  # Jaccard similarity of the messages' German lexemes


@dataclass(frozen=True)
class ConversationGroup:
    sample: str  # the last message of the longest-waiting conversation of the group
    lexemes: tuple[str, ...]  # what they have in common
    conversations: tuple[Conversation, ...]


def _lexemes(conversation_ids: list[int]) -> dict[int, frozenset[str]]:
    """The lexemes of each conversation's last message from the person, by PostgreSQL's German
    full-text configuration (stemmed, stop words dropped): "Gilt der Feinstaubalarm morgen?"
    and "Ist morgen noch Feinstaubalarm" share {feinstaubalarm, morg}."""
    if not conversation_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT DISTINCT ON (e.conversation_id) e.conversation_id,
                   tsvector_to_array(to_tsvector('german', e.text))
            FROM inbox_entry e
            WHERE e.conversation_id = ANY(%s) AND e.kind = 'inbound' AND e.text <> ''
            ORDER BY e.conversation_id, e.created_at DESC, e.id DESC
            """,
            [conversation_ids],
        )
        return {row[0]: frozenset(row[1]) for row in cursor.fetchall() if row[1]}


def conversation_groups(*, minimum: int = 2) -> list[ConversationGroup]:
    """Groups of open conversations whose last messages are similar, the biggest first. Each
    conversation is in at most one group (greedy, longest-waiting first)."""
    open_rows = list(
        Conversation.objects.filter(status=Conversation.Status.OPEN)
        .select_related("contact", "connection")
        .order_by("-last_activity_at")[:GROUP_SCAN_LIMIT]
    )
    words = _lexemes([c.pk for c in open_rows])
    candidates = sorted((c for c in open_rows if c.pk in words), key=lambda c: (c.waiting_since or c.opened_at, c.pk))
    taken: set[int] = set()
    groups: list[ConversationGroup] = []
    for seed in candidates:
        if seed.pk in taken:
            continue
        seed_words = words[seed.pk]
        members = [seed]
        for other in candidates:
            if other.pk == seed.pk or other.pk in taken:
                continue
            other_words = words[other.pk]
            union = seed_words | other_words
            if union and len(seed_words & other_words) / len(union) >= GROUP_SIMILARITY:
                members.append(other)
        if len(members) >= minimum:
            taken.update(m.pk for m in members)
            common = frozenset.intersection(*(words[m.pk] for m in members))
            groups.append(
                ConversationGroup(sample=seed.preview, lexemes=tuple(sorted(common)), conversations=tuple(members))
            )
    return sorted(groups, key=lambda g: -len(g.conversations))
