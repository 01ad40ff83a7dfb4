"""Tracked links: the per-recipient token in each link and the click that comes back on /l/<token>."""

from __future__ import annotations

import re

from django.db.models import F
from django.utils.crypto import constant_time_compare

from broadcasts.changes import broadcasts_changed
from broadcasts.models import Delivery, LinkClick, TrackedLink
from core.signing import tenant_signature
from core.tenancy import connection

LINK_PURPOSE = "broadcasts.link"
SIGNATURE_LENGTH = 12  # 72 bits: enough against guessing, short enough for an SMS


def link_token(schema: str, link_id: int, delivery_id: int) -> str:
    """`<link id hex>-<delivery id hex>-<signature>`, signed like every link we hand out
    (core.signing), bound to the schema. delivery_id 0: one token for everybody."""
    signature = tenant_signature(
        f"{link_id}:{delivery_id}", purpose=LINK_PURPOSE, schema=schema, length=SIGNATURE_LENGTH
    )
    return f"{link_id:x}-{delivery_id:x}-{signature}"


# Ids within PostgreSQL's bigint, the signature in the URL-safe base64 alphabet. Checked before
# anything else: int() accepts non-ASCII digits and any length (and turning a 5,000-digit number
# into text raises).
LINK_TOKEN = re.compile(r"([0-9a-f]{1,16})-([0-9a-f]{1,16})-[A-Za-z0-9_-]{12}", re.ASCII)
BIGINT_MAX = 2**63 - 1


def link_token_parse(schema: str, token: str) -> tuple[int, int] | None:
    """(link id, delivery id) of a token made by link_token for this schema; None for anything else."""
    match = LINK_TOKEN.fullmatch(token)
    if match is None:
        return None
    link_id, delivery_id = int(match.group(1), 16), int(match.group(2), 16)
    if link_id > BIGINT_MAX or delivery_id > BIGINT_MAX:
        return None
    # the whole token, so only the canonical spelling of the ids (no leading zeros) is accepted
    if not constant_time_compare(link_token(schema, link_id, delivery_id), token):
        return None
    return link_id, delivery_id


PREVIEW_AGENTS = re.compile(
    r"whatsapp|telegrambot|facebookexternalhit|facebot|twitterbot|slackbot|linkedinbot|discordbot|skypeuripreview|"
    r"googlebot|bingbot|applebot|embedly|pinterest|vkshare|redditbot|mastodon|preview|crawler|spider|bot/",
    re.IGNORECASE,
)


def link_click(*, token: str, method: str, user_agent: str) -> str | None:
    """Record a click on /l/<token> and return where to redirect (None: unknown link). Link
    previews (HEAD requests, messenger and social crawlers) redirect but are not counted."""
    parsed = link_token_parse(connection.schema_name, token)
    if parsed is None:
        return None
    link_id, delivery_id = parsed
    link = TrackedLink.objects.filter(pk=link_id).select_related("broadcast").first()
    if link is None:
        return None
    if method == "HEAD" or PREVIEW_AGENTS.search(user_agent or ""):
        return link.url
    TrackedLink.objects.filter(pk=link.pk).update(clicks=F("clicks") + 1)
    if (
        delivery_id
        and connection.tenant.link_tracking == "per_recipient"
        and Delivery.objects.filter(pk=delivery_id, broadcast_id=link.broadcast_id).exists()
    ):
        LinkClick.objects.create(link=link, delivery_id=delivery_id)
    broadcasts_changed(broadcast_ids=[link.broadcast_id])
    return link.url
