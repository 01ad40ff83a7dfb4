"""QR codes (segno) for subscribing: what they encode, and the SVG/PNG files.

A code for a messenger opens that messenger with the subscribe message ready (wa.me, t.me deep
link, SMSTO:); a "web" code (e-mail, or where no messenger has a public address) opens the
subscribe page. A poster's code carries the poster's own code so sign-ups are attributed.
"""

from __future__ import annotations

import io

import segno

from channels.models import Channel
from channels.selectors import channel_primary_keyword
from messengers.models import Connection
from messengers.selectors import connection_shown_provider
from subscribers import links

# Error correction M: survives a crease or a bit of dirt on a poster, keeps the code small.
ERROR_LEVEL = "m"
QUIET_ZONE = 4  # modules; the standard asks for four


def qr_payload(*, channel: Channel, provider: str, poster_code: str = "") -> str:
    """The text a QR code for this channel and messenger encodes, or "" when the channel is not
    available that way (no active connection of that messenger, or no public address)."""
    if provider == "web":
        return links.subscribe_page_url(channel_slug=channel.slug, poster_code=poster_code)
    # a real connection of that messenger first; in DEMO_MODE a sandbox that looks like it
    candidates = [
        c
        for c in channel.connections.filter(status=Connection.Status.ACTIVE).order_by("pk")
        if connection_shown_provider(c) == provider
    ]
    candidates.sort(key=lambda c: c.provider != provider)
    if not candidates:
        return ""
    connection = candidates[0]
    return links.messenger_link(
        connection, keyword=channel_primary_keyword(channel), channel_slug=channel.slug, poster_code=poster_code,
        for_qr=True,
    )  # fmt: skip


def qr_make(payload: str) -> segno.QRCode:
    return segno.make(payload, error=ERROR_LEVEL, micro=False)


def qr_svg(payload: str, *, title: str = "", scale: int = 8) -> bytes:
    buffer = io.BytesIO()
    qr_make(payload).save(buffer, kind="svg", scale=scale, border=QUIET_ZONE, xmldecl=False, title=title or None)
    return buffer.getvalue()


def qr_png(payload: str, *, scale: int = 10) -> bytes:
    buffer = io.BytesIO()
    qr_make(payload).save(buffer, kind="png", scale=scale, border=QUIET_ZONE)
    return buffer.getvalue()
