"""Files of inbound messages (images, voice notes, documents, stickers), fetched from the
provider on demand through the connection's adapter and never stored here.

    ref = inbound_media_ref(inbound)                         # what the thread shows (no I/O)
    media = inbound_media_fetch(inbound=inbound, max_bytes=16 * 2**20)   # the bytes, or ApplicationError

Providers keep media for a limited time (WhatsApp about 30 days, and its download URLs only
minutes; Telegram's file links at least an hour, the file_id longer; Twilio until the message is
deleted), so an old message's file may be gone: the error says so in words an agent understands.
"""

from __future__ import annotations

import logging

from django.utils.translation import gettext_noop

from core.errors import ApplicationError
from messengers.adapters import adapter_class, get_adapter
from messengers.adapters.base import (
    CONNECTION_KINDS,
    MEDIA_HOST_REFUSED,
    MEDIA_TOO_LARGE,
    RETRYABLE_KINDS,
    MediaFile,
    MediaRef,
    ProviderError,
)
from messengers.models import InboundMessage
from messengers.selectors import connection_config

logger = logging.getLogger(__name__)

MEDIA_NONE = gettext_noop("This message has no file that could be loaded.")
MEDIA_GONE = gettext_noop(
    "The messenger no longer has this file (messengers delete files after some time) or could not find it."
)
MEDIA_TOO_BIG = gettext_noop("The file is larger than {megabytes} MB and is not loaded here.")
MEDIA_UNREACHABLE = gettext_noop("The messenger could not be reached to load the file. Try again in a moment.")
MEDIA_REFUSED = gettext_noop("The messenger connection refused to hand out the file. Check the connection.")
MEDIA_ADDRESS = gettext_noop("The file's address is not on this platform's list of allowed hosts.")


def inbound_media_ref(inbound: InboundMessage) -> MediaRef | None:
    """The file an inbound message carries, from its stored payload (None: none, or unreadable)."""
    payload = inbound.payload if isinstance(inbound.payload, dict) else {}
    try:
        return adapter_class(inbound.connection.provider).media_ref(inbound.kind, payload)
    except (LookupError, ValueError):  # a provider this version does not know
        return None


def inbound_media_fetch(*, inbound: InboundMessage, max_bytes: int) -> MediaFile:
    """Download the file of an inbound message through its connection's adapter; failures
    raise ApplicationError with a message for the agent (the provider's words go to the log)
    and `extra["http_status"]` for the answer (404 gone, 413 too large, 502/503 provider trouble)."""
    ref = inbound_media_ref(inbound)
    if ref is None:
        raise ApplicationError(MEDIA_NONE, extra={"http_status": 404})
    connection = inbound.connection
    try:
        return get_adapter(connection_config(connection)).fetch_media(ref, max_bytes=max_bytes)
    except ProviderError as exc:
        logger.info("media of inbound message %s on connection %s: %s", inbound.pk, connection.pk, exc)
        if exc.code == MEDIA_TOO_LARGE:
            megabytes = max(max_bytes // 2**20, 1)
            raise ApplicationError(MEDIA_TOO_BIG, params={"megabytes": megabytes}, extra={"http_status": 413}) from None
        if exc.code == MEDIA_HOST_REFUSED:
            raise ApplicationError(MEDIA_ADDRESS, extra={"http_status": 502}) from None
        if exc.kind in RETRYABLE_KINDS:
            raise ApplicationError(MEDIA_UNREACHABLE, extra={"http_status": 503}) from None
        if exc.kind in CONNECTION_KINDS:
            raise ApplicationError(MEDIA_REFUSED, extra={"http_status": 502}) from None
        raise ApplicationError(MEDIA_GONE, extra={"http_status": 404}) from None
