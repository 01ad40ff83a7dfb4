"""Contacts (a person's address on one connection) and whether they can be reached: providers'
block signals and failure reports block them, a later delivery unblocks them again."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone

from messengers.adapters.base import UNREACHABLE_KINDS
from messengers.models import Connection, Contact

# Why a contact was blocked when a provider said it cannot be reached (undone when a later
# delivery says otherwise, and only then).
PROVIDER_UNREACHABLE = "provider: unreachable"


def contact_get_or_create(*, connection: Connection, address: str, display_name: str = "") -> Contact:
    contact, created = Contact.objects.get_or_create(
        connection=connection, address=address, defaults={"display_name": display_name[:200]}
    )
    if not created and display_name and not contact.display_name:
        contact.display_name = display_name[:200]
        contact.save(update_fields=["display_name", "updated_at"])
    return contact


def contact_set_status(*, contact: Contact, status: str, reason: str = "") -> Contact:
    if contact.status == status:
        return contact
    contact.status = status
    contact.status_reason = reason[:200]
    contact.status_changed_at = timezone.now()
    contact.save(update_fields=["status", "status_reason", "status_changed_at", "updated_at"])
    return contact


def contacts_mark_reachable(*, contact_ids: Iterable[int], reason: str) -> int:
    """A message to these people was delivered after all: undo a block made for `reason` (a
    provider's failure report that a later delivery contradicts, e.g. on another device)."""
    ids = list(contact_ids)
    if not ids:
        return 0
    return Contact.objects.filter(pk__in=ids, status=Contact.Status.BLOCKED, status_reason=reason[:200]).update(
        status=Contact.Status.ACTIVE, status_reason="", status_changed_at=timezone.now(), updated_at=timezone.now()
    )


def contacts_follow_messages(*, outcomes: Iterable[tuple[int | None, str, str]], reason: str) -> None:
    """Status sinks: contacts follow the final state of their messages, given as (contact id,
    status, error kind) of rows just merged (read back from the merge, under the rows' locks, so
    a concurrent run's newer state is never overwritten by an older view). A contact is
    unreachable while its message ended `failed` for an unreachable reason; a message that was
    delivered after all (multi-device) makes it reachable again."""
    unreachable: set[int] = set()
    reachable: set[int] = set()
    for contact_id, status, kind in outcomes:
        if not contact_id:
            continue
        if status == "failed" and kind in UNREACHABLE_KINDS:
            unreachable.add(contact_id)
        elif status in ("delivered", "read"):
            reachable.add(contact_id)
    if not unreachable and not reachable:
        return
    # lock in id order first: concurrent runs touching the same people wait instead of deadlocking
    list(Contact.objects.select_for_update().filter(pk__in=unreachable | reachable).order_by("pk").values_list("pk"))
    contacts_mark_unreachable(contact_ids=unreachable - reachable, reason=reason)
    contacts_mark_reachable(contact_ids=reachable, reason=reason)


def contacts_mark_unreachable(*, contact_ids: Iterable[int], reason: str) -> int:
    """A provider said these people cannot be reached (blocked the bot, not on WhatsApp…)."""
    ids = list(contact_ids)
    if not ids:
        return 0
    return (
        Contact.objects.filter(pk__in=ids)
        .exclude(status=Contact.Status.BLOCKED)
        .update(
            status=Contact.Status.BLOCKED,
            status_reason=reason[:200],
            status_changed_at=timezone.now(),
            updated_at=timezone.now(),
        )
    )
