"""Monotonic merging of delivery statuses, shared by every outbound record (single messages here,
broadcast deliveries in broadcasts).

The final state must not depend on the order events arrive in (providers reorder and repeat
them), so it is the maximum by rank over every event seen: sent < failed < delivered < read.
`read` never goes back to `delivered`; a `delivered` after `failed` (multi-device) wins;
`failed` keeps its error code and text. Timestamps keep the earliest report of each step,
and `read` implies `delivered`.

Nor may it depend on how the events are split between workers applying them at the same time
(R4). `merge_into` therefore does the merge inside PostgreSQL, in one UPDATE whose new values are
computed from the row as it is when the UPDATE writes it (greatest rank, LEAST of the times, the
error only while none is stored), after locking the rows in id order. Two runs merging into the
same message serialise on its row lock and each applies on top of the other's committed result;
the outcome is the same whichever runs first, and two runs never deadlock over the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import models

from core.tenancy import connection as db
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


@dataclass(frozen=True)
class MergedRow:
    """A row as `merge_into` left it (only rows the merge changed)."""

    pk: int
    provider_message_id: str
    status: str
    contact_id: int | None
    error_kind: str  # the kind of the error the row keeps, "" when none is known


@dataclass
class MergeResult:
    matched: set[str]  # provider ids with a row on this connection (their events are applied)
    changed: list[MergedRow]


_RANKS_JSON = json.dumps(RANK)
_NEW_STATUS = "CASE WHEN v.rank > COALESCE((%(ranks)s::jsonb ->> t.status)::int, 0) THEN v.status ELSE t.status END"
_TAKES_ERROR = "t.error_code = '' AND v.code <> ''"
_MERGE_SQL = """
UPDATE {table} AS t
   SET status = {new_status},
       delivered_at = LEAST(t.delivered_at, v.delivered_at),
       read_at = LEAST(t.read_at, v.read_at),
       error_code = CASE WHEN {takes_error} THEN v.code ELSE t.error_code END,
       error_detail = CASE WHEN {takes_error} THEN v.detail ELSE t.error_detail END{extra_set}
  FROM unnest(%(ids)s::bigint[], %(statuses)s::text[], %(ranks_of)s::int[], %(delivered)s::timestamptz[],
              %(read)s::timestamptz[], %(codes)s::text[], %(details)s::text[], %(kinds)s::text[])
       AS v(id, status, rank, delivered_at, read_at, code, detail, kind)
 WHERE t.id = v.id AND t.id = ANY(%(ids)s::bigint[])
   AND ({new_status} <> t.status
        OR LEAST(t.delivered_at, v.delivered_at) IS DISTINCT FROM t.delivered_at
        OR LEAST(t.read_at, v.read_at) IS DISTINCT FROM t.read_at
        OR ({takes_error}))
RETURNING t.id, t.provider_message_id, t.status, t.contact_id, {kind_of_row}
"""


def merge_into(
    *, model: type[models.Model], connection_id: int, events: Iterable[StatusEvent], has_error_kind: bool
) -> MergeResult:
    """Merge status events into `model`'s rows of one connection (a table with the columns
    connection_id, provider_message_id, contact_id, status, delivered_at, read_at, error_code,
    error_detail, and error_kind if `has_error_kind`; `updated_at` is kept current if present).
    Runs in the caller's transaction; the rows stay locked until it ends."""
    summaries = summarise(events)
    if not summaries:
        return MergeResult(set(), [])
    table = f'"{model._meta.db_table}"'
    field_names = {field.column for field in model._meta.concrete_fields}
    extra_set = ""
    if has_error_kind:
        extra_set += f",\n       error_kind = CASE WHEN {_TAKES_ERROR} THEN v.kind ELSE t.error_kind END"
    if "updated_at" in field_names:
        extra_set += ",\n       updated_at = now()"
    kind_of_row = "t.error_kind" if has_error_kind else "CASE WHEN t.error_code = v.code THEN v.kind ELSE '' END"
    with db.cursor() as cursor:
        # the rows this batch touches, locked in id order: concurrent runs wait for each other
        # instead of deadlocking, and each UPDATE below merges into the latest committed values
        cursor.execute(
            f"SELECT id, provider_message_id FROM {table} "  # noqa: S608 - table name from the model
            "WHERE connection_id = %s AND provider_message_id <> '' AND provider_message_id = ANY(%s) "
            "ORDER BY id FOR UPDATE",
            [connection_id, list(summaries)],
        )
        locked = cursor.fetchall()
        if not locked:
            return MergeResult(set(), [])
        # one entry per row (by primary key, so the UPDATE finds its rows by index)
        batch = [(pk, summaries[pid]) for pk, pid in locked]
        error_max, detail_max = _max_length(model, "error_code"), _max_length(model, "error_detail")
        cursor.execute(
            _MERGE_SQL.format(
                table=table,
                new_status=_NEW_STATUS,
                takes_error=_TAKES_ERROR,
                extra_set=extra_set,
                kind_of_row=kind_of_row,
            ),
            {
                "ranks": _RANKS_JSON,
                "ids": [pk for pk, _ in batch],
                "statuses": [s.status for _, s in batch],
                "ranks_of": [RANK[s.status] for _, s in batch],
                "delivered": [s.delivered_at for _, s in batch],
                "read": [s.read_at for _, s in batch],
                "codes": [s.error_code[:error_max] for _, s in batch],
                "details": [s.error_title[:detail_max] for _, s in batch],
                "kinds": [_error_kind(s) for _, s in batch],
            },
        )
        changed = [MergedRow(*row) for row in cursor.fetchall()]
    return MergeResult({pid for _, pid in locked}, changed)


def _max_length(model: type[models.Model], name: str) -> int:
    field = model._meta.get_field(name)
    assert isinstance(field, models.CharField) and field.max_length
    return field.max_length


def _error_kind(summary: StatusSummary) -> str:
    if not summary.error_code:
        return ""
    return summary.error_kind.value if summary.error_kind else "provider"
