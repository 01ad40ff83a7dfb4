"""Fan-out: which subscribers a broadcast reaches, and one Delivery row for each.

INSERT … SELECT … ON CONFLICT DO NOTHING over subscriber-id ranges, resuming at the broadcast's
`fanout_cursor`: never the whole list in memory, safe to run twice. The same recipients SELECT
feeds the send plan (broadcasts.selectors).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from broadcasts.models import Broadcast, Delivery
from core.tenancy import connection as db
from subscribers.models import Subscriber

FANOUT_CHUNK = 20_000  # subscriber ids per INSERT … SELECT: ~0.3 s each, bounded memory in PostgreSQL
WHATSAPP_WINDOW = timedelta(hours=24)

# One row per subscriber: their best contact on a connection that carries one of the targeted
# channels they subscribe to (most recently active first). `use_template`: WhatsApp people whose
# 24-hour window is closed can only get an approved template.
_RECIPIENTS_SQL = """
SELECT DISTINCT ON (s.id)
    %(broadcast)s, s.id, c.id, c.connection_id, s.language,
    (conn.provider = 'whatsapp' AND (c.last_inbound_at IS NULL OR c.last_inbound_at < %(window_start)s)),
    'queued', 0, %(now)s, '', '', '', '', '', false
FROM subscribers_subscriber s
JOIN subscribers_subscription sub
  ON sub.subscriber_id = s.id AND sub.status = 'active' AND sub.channel_id = ANY(%(channels)s)
JOIN messengers_contact c ON c.subscriber_id = s.id AND c.status = 'active'
JOIN channels_channel_connections cc ON cc.channel_id = sub.channel_id AND cc.connection_id = c.connection_id
JOIN messengers_connection conn ON conn.id = c.connection_id AND conn.status <> 'disabled'
WHERE s.status = 'active' AND s.id > %(lo)s AND s.id <= %(hi)s
  {filters}
ORDER BY s.id, c.last_inbound_at DESC NULLS LAST, c.id
"""

_FANOUT_SQL = (
    """
INSERT INTO broadcasts_delivery
    (broadcast_id, subscriber_id, contact_id, connection_id, language, use_template, status, attempts,
     next_attempt_at, provider_message_id, claimed_by, error_kind, error_code, error_detail, possible_duplicate)
"""
    + _RECIPIENTS_SQL
    + " ON CONFLICT (broadcast_id, subscriber_id) DO NOTHING"
)


def _target_filters(broadcast: Broadcast) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    district_ids = list(broadcast.districts.values_list("pk", flat=True))
    if district_ids:
        clauses.append("AND s.district_id = ANY(%(districts)s)")
        params["districts"] = district_ids
    if broadcast.languages:
        clauses.append("AND s.language = ANY(%(languages)s)")
        params["languages"] = list(broadcast.languages)
    if broadcast.tags:
        clauses.append("AND s.tags && %(tags)s::varchar[]")
        params["tags"] = list(broadcast.tags)
    return " ".join(clauses), params


def recipients_sql(broadcast: Broadcast) -> tuple[str, dict[str, Any]]:
    """The recipients SELECT with its parameters, over every subscriber (used by the send plan):
    columns broadcast, subscriber, contact, connection, language, use_template, …"""
    filters, params = _target_filters(broadcast)
    now = timezone.now()
    params.update(
        {
            "broadcast": broadcast.pk or 0,
            "channels": list(broadcast.channels.values_list("pk", flat=True)),
            "lo": 0,
            "hi": 2**62,
            "now": now,
            "window_start": now - WHATSAPP_WINDOW,
        }
    )
    return _RECIPIENTS_SQL.format(filters=filters), params


def fanout(broadcast: Broadcast, *, on_chunk: Callable[[int], None] | None = None) -> int:
    """Materialise the deliveries, resuming at `fanout_cursor`. Returns rows written now."""
    channels = list(broadcast.channels.values_list("pk", flat=True))
    filters, extra = _target_filters(broadcast)
    sql = _FANOUT_SQL.format(filters=filters)
    top = Subscriber.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    cursor_id = broadcast.fanout_cursor
    written = 0
    now = timezone.now()
    while cursor_id < top:
        hi = min(top, cursor_id + FANOUT_CHUNK)
        params = {
            **extra,
            "broadcast": broadcast.pk,
            "channels": channels,
            "lo": cursor_id,
            "hi": hi,
            "now": now,
            "window_start": now - WHATSAPP_WINDOW,
        }
        with transaction.atomic(), db.cursor() as cursor:
            cursor.execute(sql, params)
            count = cursor.rowcount
            Broadcast.objects.filter(pk=broadcast.pk).update(fanout_cursor=hi)
        cursor_id = hi
        written += count
        if count and on_chunk:
            on_chunk(count)
    if written > 5000:
        # fresh statistics, so claims and result updates use the indexes right away
        with db.cursor() as cursor:
            cursor.execute("ANALYZE broadcasts_delivery")
    total = Delivery.objects.filter(broadcast=broadcast).count()
    Broadcast.objects.filter(pk=broadcast.pk).update(fanout_done=True, recipients_total=total, fanout_cursor=top)
    return written
