"""Links to and for subscribers: signed personal links, absolute tenant URLs, messenger deep links.

Personal links (preferences, one-click unsubscribe) carry the subscriber id and an HMAC over the
id and the subscriber's `link_secret`, salted with the purpose and the tenant schema: a link of
tenant A is worthless on tenant B's domain, and replacing `link_secret` revokes every old link.
They do not expire, because they sit in the footer of every e-mail ever sent.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import quote, urlencode

from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.http import base36_to_int, int_to_base36

from core.signing import tenant_signature
from core.tenancy import connection as db
from messengers.adapters.base import Provider
from messengers.models import Connection
from messengers.selectors import connection_demo_look
from subscribers.models import Subscriber
from tenants.selectors import tenant_absolute_url

PREFERENCES = "preferences"
UNSUBSCRIBE = "unsubscribe"
PURPOSES = (PREFERENCES, UNSUBSCRIBE)

# Poster codes: no 0/O, 1/I/L, so they survive being read off a wall and typed.
POSTER_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
POSTER_CODE_LENGTH = 6
POSTER_PAYLOAD_PREFIX = "qr_"  # Telegram deep-link payload of a poster: qr_<CODE>
TELEGRAM_PAYLOAD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TELEGRAM_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")


def _signature(subscriber_id: int, link_secret: str, purpose: str) -> str:
    return tenant_signature(f"{subscriber_id}:{link_secret}", purpose=f"subscribers.{purpose}", schema=db.schema_name)


def subscriber_token(subscriber: Subscriber, purpose: str) -> str:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown link purpose {purpose!r}")
    return f"{int_to_base36(subscriber.pk)}.{_signature(subscriber.pk, subscriber.link_secret, purpose)}"


def subscriber_from_token(token: str, purpose: str) -> Subscriber | None:
    """The (not erased) subscriber a personal link belongs to, or None for any bad token."""
    id_part, _, signature = token.partition(".")
    if not id_part or not signature or len(id_part) > 13 or purpose not in PURPOSES:
        return None
    try:
        subscriber_id = base36_to_int(id_part)
    except ValueError:
        return None
    subscriber = Subscriber.objects.filter(pk=subscriber_id, status=Subscriber.Status.ACTIVE).first()
    if subscriber is None:
        return None
    expected = _signature(subscriber.pk, subscriber.link_secret, purpose)
    return subscriber if constant_time_compare(signature, expected) else None


def absolute_url(path: str) -> str:
    return tenant_absolute_url(path)


def preferences_url(subscriber: Subscriber) -> str:
    return absolute_url(reverse("subscribers:preferences", args=[subscriber_token(subscriber, PREFERENCES)]))


def unsubscribe_url(subscriber: Subscriber) -> str:
    return absolute_url(reverse("subscribers:unsubscribe", args=[subscriber_token(subscriber, UNSUBSCRIBE)]))


def subscribe_page_url(*, channel_slug: str = "", poster_code: str = "") -> str:
    params = {key: value for key, value in (("channel", channel_slug), ("poster", poster_code)) if value}
    query = f"?{urlencode(params)}" if params else ""
    return absolute_url(reverse("subscribers:subscribe") + query)


def new_poster_code() -> str:
    return "".join(secrets.choice(POSTER_ALPHABET) for _ in range(POSTER_CODE_LENGTH))


# --------------------------------------------------------------------------------------------
# Messenger links: what a QR code or a button on the subscribe page opens
# --------------------------------------------------------------------------------------------
def keyword_message(keyword: str, poster_code: str = "") -> str:
    return " ".join(part for part in ("START", keyword, poster_code) if part)


def phone_digits(connection: Connection) -> str:
    digits = re.sub(r"\D", "", connection.public_address)
    return digits if 6 <= len(digits) <= 15 else ""


def telegram_username(connection: Connection) -> str:
    name = connection.public_address.strip()
    for prefix in ("https://t.me/", "http://t.me/", "t.me/", "@"):
        if name.lower().startswith(prefix):
            name = name[len(prefix) :]
    return name if TELEGRAM_USERNAME.match(name) else ""


def telegram_payload(channel_slug: str, poster_code: str = "") -> str:
    payload = f"{POSTER_PAYLOAD_PREFIX}{poster_code}" if poster_code else channel_slug
    return payload if TELEGRAM_PAYLOAD.match(payload) else ""


def demo_simulator_url(connection: Connection, *, text: str) -> str:
    """Where the demo's WhatsApp and Telegram look-alikes lead instead of wa.me or t.me: the phone
    simulator of that sandbox connection, with a new phone's first message filled in (staff sign
    in first). Harmless: nothing leaves the platform."""
    path = reverse("tenant_admin:messengers_phones", args=[connection.pk])
    return absolute_url(f"{path}?{urlencode({'text': text})}" if text else path)


def messenger_link(
    connection: Connection, *, keyword: str, channel_slug: str, poster_code: str = "", for_qr: bool = False
) -> str:
    """The link (or QR payload) that starts a subscription on this connection, or "" when the
    connection has no usable public address (then only the keyword instructions apply)."""
    if connection_demo_look(connection) in (Provider.WHATSAPP, Provider.TELEGRAM):
        return demo_simulator_url(connection, text=keyword_message(keyword, poster_code))
    provider = connection.provider
    if provider == Provider.WHATSAPP:
        digits = phone_digits(connection)
        if not digits or not keyword:
            return ""
        return f"https://wa.me/{digits}?text={quote(keyword_message(keyword, poster_code))}"
    if provider == Provider.TELEGRAM:
        username = telegram_username(connection)
        payload = telegram_payload(channel_slug, poster_code)
        if not username:
            return ""
        return f"https://t.me/{username}?start={payload}" if payload else f"https://t.me/{username}"
    if provider == Provider.SMS:
        digits = phone_digits(connection)
        if not digits or not keyword:
            return ""
        text = keyword_message(keyword, poster_code)
        # SMSTO: is what camera apps understand in a QR code; sms: is the link form for buttons.
        return f"SMSTO:+{digits}:{text}" if for_qr else f"sms:+{digits}?body={quote(text)}"
    return ""
