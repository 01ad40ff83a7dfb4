"""Monotonic merging of delivery statuses, shared by every outbound record (single messages here,
broadcast deliveries in broadcasts).

The final state must not depend on the order events arrive in (providers reorder and repeat
them), so it is the maximum by rank over every event seen: sent < failed < delivered < read.
`read` never goes back to `delivered`; a `delivered` after `failed` (multi-device) wins;
`failed` keeps its error code and text. Timestamps keep the earliest report of each step,
and `read` implies `delivered`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from messengers.adapters.base import ErrorKind, StatusEvent

RANK = {
    "queued": 0,
    "claimed": 0,
    "sending": 0,
    "retry": 0,
    "skipped": 0,
    "sent": 1,
    "failed": 2,
    "delivered": 3,
    "read": 4,
}


@dataclass
class StatusSummary:
    """Everything a batch of events says about one provider message id."""

    status: str
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    error_code: str = ""
    error_title: str = ""
    error_kind: ErrorKind | None = None


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def summarise(events: Iterable[StatusEvent]) -> dict[str, StatusSummary]:
    out: dict[str, StatusSummary] = {}
    for event in events:
        summary = out.get(event.provider_message_id)
        if summary is None:
            summary = out[event.provider_message_id] = StatusSummary(status=event.status)
        elif RANK[event.status] > RANK[summary.status]:
            summary.status = event.status
        if event.status == "sent":
            summary.sent_at = _earliest(summary.sent_at, event.at)
        elif event.status == "delivered":
            summary.delivered_at = _earliest(summary.delivered_at, event.at)
        elif event.status == "read":
            summary.read_at = _earliest(summary.read_at, event.at)
            summary.delivered_at = _earliest(summary.delivered_at, event.at)
        elif event.status == "failed" and not summary.error_code:
            summary.error_code = event.error_code
            summary.error_title = event.error_title
            summary.error_kind = event.error_kind
    return out


@dataclass
class Merged:
    status: str
    delivered_at: datetime | None
    read_at: datetime | None
    error_code: str
    error_title: str
    changed: bool


def merge(
    *,
    status: str,
    delivered_at: datetime | None,
    read_at: datetime | None,
    error_code: str,
    error_title: str,
    summary: StatusSummary,
) -> Merged:
    new_status = summary.status if RANK[summary.status] > RANK.get(status, 0) else status
    new_delivered = _earliest(delivered_at, summary.delivered_at)
    new_read = _earliest(read_at, summary.read_at)
    new_code, new_title = error_code, error_title
    if summary.error_code and not error_code:
        new_code, new_title = summary.error_code, summary.error_title
    changed = (new_status, new_delivered, new_read, new_code) != (status, delivered_at, read_at, error_code)
    return Merged(new_status, new_delivered, new_read, new_code, new_title, changed)
