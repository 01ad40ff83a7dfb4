"""Status webhooks → broadcast deliveries (a messenger status sink, settings.MESSENGER_STATUS_SINKS).

Its own module so the status path stays apart from the broadcast workflow.
"""

from __future__ import annotations

from broadcasts.changes import broadcasts_changed
from broadcasts.models import Delivery
from messengers.adapters.base import StatusEvent
from messengers.services import PROVIDER_UNREACHABLE, contacts_follow_messages
from messengers.status import merge_into

UNREACHABLE_REASON = PROVIDER_UNREACHABLE


def delivery_apply_statuses(*, connection_id: int, events: list[StatusEvent]) -> set[str]:
    """Merge a batch of status events into the deliveries they belong to (one locking SELECT,
    one UPDATE that merges in SQL). Returns the provider ids it recognised; the rest stay
    deferred.

    The result depends only on the set of events seen, not on their order, their batching, or
    how many workers apply them at once: the status is the maximum by rank, the first error
    stored is kept whatever comes after, and a contact is unreachable exactly while its
    delivery's final state is `failed` with an unreachable reason (a later `delivered` —
    multi-device — makes it reachable again)."""
    result = merge_into(model=Delivery, connection_id=connection_id, events=events, has_error_kind=True)
    contacts_follow_messages(
        outcomes=[(row.contact_id, row.status, row.error_kind) for row in result.changed], reason=UNREACHABLE_REASON
    )
    # the broadcasts whose figures changed (nothing for replays, which change no row)
    broadcasts_changed(delivery_ids=[row.pk for row in result.changed])
    return result.matched
