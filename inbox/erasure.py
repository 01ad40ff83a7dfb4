"""GDPR for the inbox: a person's conversations in their export, and erased with them.

`conversations_erase` is in settings.SUBSCRIBER_ERASURE_HOOKS before the messengers hook (which
deletes the contacts the conversations hang off); the contract is in subscribers.services.gdpr.
Threads copy what the person wrote (Entry.text), so deleting the InboundMessage rows alone
would leave it behind: the whole conversation goes, our replies and notes included (they
quote and name the person)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from inbox.models import Conversation, Entry
from messengers.models import Contact


def conversations_erase(*, subscriber_id: int | None, contact_ids: list[int], since: datetime | None) -> list[str]:
    """Delete the conversations of these contacts; returns the provider ids of our replies in
    them (so their stored statuses are dropped too)."""
    if not contact_ids:
        return []
    conversations = Conversation.objects.filter(contact_id__in=contact_ids)
    provider_ids = list(
        Entry.objects.filter(conversation__in=conversations, outbound__isnull=False)
        .exclude(outbound__provider_message_id="")
        .values_list("outbound__provider_message_id", flat=True)
    )
    conversations.delete()
    return sorted(set(provider_ids))


def conversation_list_for_subscriber(subscriber_id: int) -> list[dict[str, Any]]:
    """A person's conversations for their GDPR export (Art. 15): what they wrote and what we
    answered, with times. Internal notes are included: they are data about the person too."""
    contact_ids = list(Contact.objects.filter(subscriber_id=subscriber_id).values_list("pk", flat=True))
    conversations = Conversation.objects.filter(contact_id__in=contact_ids).select_related("connection")
    return [
        {
            "messenger": conversation.connection.provider,
            "status": conversation.status,
            "opened": conversation.opened_at.isoformat(),
            "closed": conversation.closed_at.isoformat() if conversation.closed_at else None,
            "thread": [
                {"at": entry.created_at.isoformat(), "kind": entry.kind, "text": entry.text}
                for entry in conversation.entries.exclude(kind="event").order_by("created_at", "id")
            ],
        }
        for conversation in conversations.order_by("pk")
    ]
