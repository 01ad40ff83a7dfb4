"""The rows of a send: claiming a batch, moving a window to `sending`, keeping the lease,
giving rows back, and writing every outcome of a window in one UPDATE.

Also `classify`, which turns a provider error into the row's next state: retry later (back-off
from core.backoff, never sooner than the provider's `retry_after`), failed for good, or (for the
unreachable kinds of messengers.adapters.base) failed with the contact marked unreachable.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from broadcasts.models import Delivery
from core.backoff import backoff_seconds
from core.tenancy import connection as db
from messengers.adapters.base import UNREACHABLE_KINDS, ProviderError
from messengers.services import PROVIDER_UNREACHABLE, contacts_mark_unreachable

BATCH_MAX = 1000  # rows per claim
BATCH_SECONDS = 30.0  # a claim should take about this long at the connection's rate
LEASE_SECONDS = 45  # a dead worker's rows are re-queued after this (reliability goal R1: < 60 s)
MAX_ATTEMPTS = 6


@dataclass(frozen=True)
class ClaimedRow:
    delivery_id: int
    subscriber_id: int | None
    contact_id: int | None
    connection_id: int
    language: str
    use_template: bool
    attempts: int
    address: str


@dataclass
class Outcome:
    delivery_id: int
    status: str  # sent | failed | queued (retry) | skipped
    provider_message_id: str = ""
    error_kind: str = ""
    error_code: str = ""
    error_detail: str = ""
    next_attempt_at: datetime | None = None
    retry_after: float | None = None
    unreachable_contact: int | None = None


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def batch_size_for(rate: float) -> int:
    return max(1, min(BATCH_MAX, int(rate * BATCH_SECONDS)))


_CLAIM_SQL = """
WITH picked AS (
    SELECT d.id FROM broadcasts_delivery d
    WHERE d.broadcast_id = %(broadcast)s AND d.status = 'queued' AND d.next_attempt_at <= %(now)s
      AND d.connection_id = %(connection)s
    ORDER BY d.next_attempt_at, d.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE broadcasts_delivery d
   SET status = 'claimed', lease_expires_at = %(lease)s, claimed_by = %(worker)s
  FROM picked
 WHERE d.id = picked.id
RETURNING d.id, d.subscriber_id, d.contact_id, d.connection_id, d.language, d.use_template, d.attempts,
          (SELECT c.address FROM messengers_contact c WHERE c.id = d.contact_id)
"""


def ready_connections(broadcast_id: int) -> list[int]:
    """Connections with rows ready to send now (a sender works one connection per claim)."""
    return list(
        Delivery.objects.filter(
            broadcast_id=broadcast_id, status=Delivery.Status.QUEUED, next_attempt_at__lte=timezone.now()
        )
        .order_by()
        .values_list("connection_id", flat=True)
        .distinct()
    )


def claim(broadcast_id: int, connection_id: int, limit: int, worker: str) -> list[ClaimedRow]:
    now = timezone.now()
    with transaction.atomic(), db.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            {
                "broadcast": broadcast_id,
                "now": now,
                "connection": connection_id,
                "limit": limit,
                "lease": now + timedelta(seconds=LEASE_SECONDS),
                "worker": worker,
            },
        )
        rows = cursor.fetchall()
    return [ClaimedRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] or "") for r in rows]


# One window, claimed and moved to `sending` in one statement right before it goes (one row
# write instead of two: `queued → claimed` per batch, then `claimed → sending` per window). The
# rows in `sending` are still exactly the requests about to go out, so after a crash no more rows
# are flagged as possible duplicates than requests were in flight. The eligibility check of
# _MARK_SENDING_SQL runs in the same statement: who opted out since fan-out becomes `skipped`.
# `attempts` comes back as it was before this attempt (what `classify` expects).
_CLAIM_WINDOW_SQL = """
WITH picked AS MATERIALIZED (
    SELECT d.id, d.contact_id, d.subscriber_id FROM broadcasts_delivery d
    WHERE d.broadcast_id = %(broadcast)s AND d.status = 'queued' AND d.next_attempt_at <= %(now)s
      AND d.connection_id = %(connection)s
    ORDER BY d.next_attempt_at, d.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), judged AS MATERIALIZED (
    SELECT p.id,
           EXISTS (SELECT 1 FROM messengers_contact c WHERE c.id = p.contact_id AND c.status = 'active')
           AND EXISTS (SELECT 1 FROM subscribers_subscription sub
                        WHERE sub.subscriber_id = p.subscriber_id AND sub.status = 'active'
                          AND sub.channel_id = ANY(%(channels)s::bigint[])) AS ok
      FROM picked p
)
UPDATE broadcasts_delivery d
   SET status = CASE WHEN j.ok THEN 'sending' ELSE 'skipped' END,
       attempts = d.attempts + CASE WHEN j.ok THEN 1 ELSE 0 END,
       lease_expires_at = CASE WHEN j.ok THEN %(lease)s::timestamptz END,
       claimed_by = CASE WHEN j.ok THEN %(worker)s ELSE '' END,
       error_kind = CASE WHEN j.ok THEN d.error_kind ELSE 'opted_out' END,
       error_detail = CASE WHEN j.ok THEN d.error_detail ELSE %(detail)s END
  FROM judged j
 WHERE d.id = j.id
RETURNING j.ok, d.id, d.subscriber_id, d.contact_id, d.connection_id, d.language, d.use_template,
          d.attempts - CASE WHEN j.ok THEN 1 ELSE 0 END,
          CASE WHEN j.ok THEN (SELECT c.address FROM messengers_contact c WHERE c.id = d.contact_id) END
"""


def claim_window(
    broadcast_id: int, connection_id: int, limit: int, worker: str, channel_ids: Sequence[int]
) -> tuple[list[ClaimedRow], int]:
    """Take up to `limit` ready rows of the connection straight to `sending` (the people who
    opted out since fan-out to `skipped`). Returns the rows to send now and how many were
    skipped; fewer than `limit` in all means no more rows are ready. Inside a caller's
    transaction it joins it (no savepoint)."""
    now = timezone.now()
    with transaction.atomic(savepoint=False), db.cursor() as cursor:
        cursor.execute(
            _CLAIM_WINDOW_SQL,
            {
                "broadcast": broadcast_id,
                "now": now,
                "connection": connection_id,
                "limit": limit,
                "lease": now + timedelta(seconds=LEASE_SECONDS),
                "worker": worker,
                "channels": list(channel_ids),
                "detail": "unsubscribed, blocked or erased before sending",
            },
        )
        result = cursor.fetchall()
    rows = [ClaimedRow(r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8] or "") for r in result if r[0]]
    rows.sort(key=lambda row: row.delivery_id)
    return rows, len(result) - len(rows)


# Eligibility at the moment of sending: the contact is still active (not STOPped, blocked or
# erased) and the person still subscribes to one of the broadcast's channels. Rows failing it
# become `skipped`. (Pause and cancel are watched separately, once a second.)
_MARK_SENDING_SQL = """
UPDATE broadcasts_delivery d
   SET status = 'sending', attempts = d.attempts + 1, lease_expires_at = %(lease)s
 WHERE d.id = ANY(%(ids)s::bigint[]) AND d.status = 'claimed' AND d.claimed_by = %(worker)s
   AND EXISTS (SELECT 1 FROM messengers_contact c WHERE c.id = d.contact_id AND c.status = 'active')
   AND EXISTS (SELECT 1 FROM subscribers_subscription sub
                WHERE sub.subscriber_id = d.subscriber_id AND sub.status = 'active'
                  AND sub.channel_id = ANY(%(channels)s::bigint[]))
RETURNING d.id
"""

_SKIP_SQL = """
UPDATE broadcasts_delivery d
   SET status = 'skipped', error_kind = 'opted_out', error_detail = %(detail)s, lease_expires_at = NULL,
       claimed_by = ''
 WHERE d.id = ANY(%(ids)s::bigint[]) AND d.status = 'claimed' AND d.claimed_by = %(worker)s
"""


def mark_sending(ids: Sequence[int], worker: str, channel_ids: Sequence[int]) -> set[int]:
    """Move a window to `sending` (the only rows that may be duplicated after a crash) and skip
    the people who opted out since fan-out."""
    lease = timezone.now() + timedelta(seconds=LEASE_SECONDS)
    with transaction.atomic(), db.cursor() as cursor:
        cursor.execute(
            _MARK_SENDING_SQL, {"ids": list(ids), "worker": worker, "lease": lease, "channels": list(channel_ids)}
        )
        ok = {row[0] for row in cursor.fetchall()}
        rest = [i for i in ids if i not in ok]
        if rest:
            cursor.execute(
                _SKIP_SQL, {"ids": rest, "worker": worker, "detail": "unsubscribed, blocked or erased before sending"}
            )
    return ok


def extend_lease(worker: str) -> int:
    """Keep a long batch's rows ours (slow connections, or a 429 back-off, take longer than the
    lease): the rows it claimed and those it is sending."""
    return Delivery.objects.filter(
        claimed_by=worker, status__in=[Delivery.Status.CLAIMED, Delivery.Status.SENDING]
    ).update(lease_expires_at=timezone.now() + timedelta(seconds=LEASE_SECONDS))


def release(ids: Sequence[int], worker: str) -> int:
    """Give claimed-but-unsent rows back (pause, cancel, shutdown)."""
    if not ids:
        return 0
    return Delivery.objects.filter(pk__in=list(ids), status=Delivery.Status.CLAIMED, claimed_by=worker).update(
        status=Delivery.Status.QUEUED, lease_expires_at=None, claimed_by=""
    )


_RESULTS_SQL = """
UPDATE broadcasts_delivery d SET
    status = v.status,
    provider_message_id = CASE WHEN v.pid <> '' THEN v.pid ELSE d.provider_message_id END,
    sent_at = CASE WHEN v.status = 'sent' THEN %(now)s ELSE d.sent_at END,
    error_kind = v.kind, error_code = v.code, error_detail = v.detail,
    next_attempt_at = COALESCE(v.next_at, d.next_attempt_at),
    lease_expires_at = NULL, claimed_by = ''
FROM (SELECT unnest(%(ids)s::bigint[]) AS id, unnest(%(statuses)s::text[]) AS status,
             unnest(%(pids)s::text[]) AS pid, unnest(%(kinds)s::text[]) AS kind,
             unnest(%(codes)s::text[]) AS code, unnest(%(details)s::text[]) AS detail,
             unnest(%(next_ats)s::timestamptz[]) AS next_at) AS v
WHERE d.id = v.id AND d.id = ANY(%(ids)s::bigint[]) AND d.status = 'sending'
"""


def write_outcomes(outcomes: Sequence[Outcome]) -> None:
    if not outcomes:
        return
    with transaction.atomic(), db.cursor() as cursor:
        cursor.execute(
            _RESULTS_SQL,
            {
                "now": timezone.now(),
                "ids": [o.delivery_id for o in outcomes],
                "statuses": [o.status for o in outcomes],
                "pids": [o.provider_message_id for o in outcomes],
                "kinds": [o.error_kind for o in outcomes],
                "codes": [o.error_code[:40] for o in outcomes],
                "details": [o.error_detail[:300] for o in outcomes],
                "next_ats": [o.next_attempt_at for o in outcomes],
            },
        )
    unreachable = [o.unreachable_contact for o in outcomes if o.unreachable_contact]
    if unreachable:
        contacts_mark_unreachable(contact_ids=unreachable, reason=PROVIDER_UNREACHABLE)


def classify(row: ClaimedRow, error: ProviderError, now: datetime) -> Outcome:
    """Turn a provider error into the row's next state."""
    outcome = Outcome(
        delivery_id=row.delivery_id,
        status="failed",
        error_kind=error.kind.value,
        error_code=error.code or str(error.http_status or ""),
        error_detail=error.message[:300],
        retry_after=error.retry_after,
    )
    attempts = row.attempts + 1
    if error.retryable or error.affects_connection:
        if attempts >= MAX_ATTEMPTS and not error.affects_connection:
            outcome.error_detail = f"gave up after {attempts} attempts: {error.message}"[:300]
            return outcome
        outcome.status = "queued"
        delay = (
            60.0
            if error.affects_connection
            else backoff_seconds(attempts, first=2.0, cap=300.0, retry_after=error.retry_after, jitter=0.25)
        )
        outcome.next_attempt_at = now + timedelta(seconds=delay)
        return outcome
    if error.kind in UNREACHABLE_KINDS and row.contact_id:
        outcome.unreachable_contact = row.contact_id
    return outcome
