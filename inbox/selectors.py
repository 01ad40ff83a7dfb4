"""Reads of the shared inbox: the list with its filters, the thread, what changed since the
page last asked, and what an agent may see of the person."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from broadcasts.pipeline import WHATSAPP_WINDOW
from inbox.models import OPEN_STATES, Conversation, Entry
from messengers.adapters.base import Provider


def reply_needs_template(conversation: Conversation) -> bool:
    """WhatsApp takes free text only within 24 hours of the person's last message; after that
    only an approved template. Every other messenger (and the sandbox) takes free text."""
    if conversation.connection.provider != Provider.WHATSAPP:
        return False
    last = conversation.contact.last_inbound_at
    return last is None or last < timezone.now() - WHATSAPP_WINDOW


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


@dataclass(frozen=True)
class ListFilters:
    status: str = "open"  # open / waiting / closed / all ("open" means open and waiting)
    mine_of: int | None = None  # a user id: only conversations assigned to them
    unassigned: bool = False
    department_id: int | None = None
    label: str = ""
    connection_id: int | None = None
    provider: str = ""
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
    query = filters.query.replace("\x00", "").strip()[:200]
    if query:
        matching = Entry.objects.annotate(search=SearchVector("text", config="german")).filter(
            conversation_id=OuterRef("pk"), search=SearchQuery(query, config="german", search_type="websearch")
        )
        rows = rows.filter(Exists(matching))
    return rows.order_by("waiting_since", "-last_activity_at", "-pk")


def conversation_thread(conversation: Conversation) -> QuerySet[Entry]:
    return conversation.entries.select_related("inbound", "outbound", "author").order_by("created_at", "id")


def conversations_changed_since(since: datetime) -> list[int]:
    """Ids of conversations that changed after `since` (the page's cheap poll)."""
    return list(Conversation.objects.filter(changed_at__gt=since).values_list("pk", flat=True)[:500])


def unanswered_count() -> int:
    """Conversations waiting for the team (the navigation badge)."""
    return Conversation.objects.filter(status=Conversation.Status.OPEN).count()
