"""The Graph API's vocabulary, shared by sending and by webhook parsing: where the API lives
(`graph_root`), what its error codes mean (`ERROR_KINDS`, `classify`), and tolerant readers for
the JSON it sends (a malformed piece raises WebhookParseError, never a TypeError)."""

from __future__ import annotations

import re
from typing import Any

from messengers.adapters.base import ErrorKind, WebhookParseError

DEFAULT_API_BASE = "https://graph.facebook.com"
API_VERSION = "v23.0"
VERSIONED = re.compile(r"/v[0-9]+\.[0-9]+$")

K = ErrorKind
ERROR_KINDS: dict[int, ErrorKind] = {
    0: K.BAD_CREDENTIALS,
    190: K.BAD_CREDENTIALS,
    1: K.TEMPORARY,
    2: K.TEMPORARY,
    131000: K.TEMPORARY,
    131016: K.TEMPORARY,
    131057: K.TEMPORARY,
    4: K.RATE_LIMITED,
    80007: K.RATE_LIMITED,
    130429: K.RATE_LIMITED,
    131056: K.PAIR_RATE,
    131047: K.WINDOW_CLOSED,
    131026: K.NOT_ON_MESSENGER,
    131021: K.INVALID_RECIPIENT,
    131030: K.INVALID_RECIPIENT,
    131050: K.BLOCKED,  # the person stopped marketing messages: an opt-out
    3: K.ACCOUNT_PROBLEM,
    10: K.ACCOUNT_PROBLEM,
    368: K.ACCOUNT_PROBLEM,
    131005: K.ACCOUNT_PROBLEM,
    131031: K.ACCOUNT_PROBLEM,
    131042: K.ACCOUNT_PROBLEM,
    131045: K.ACCOUNT_PROBLEM,
    131048: K.ACCOUNT_PROBLEM,  # spam rate limit: pause the connection, a human has to look
    100: K.BAD_REQUEST,
    130472: K.BAD_REQUEST,  # experiment group: do not retry, but the person is not unreachable
    131008: K.BAD_REQUEST,
    131009: K.BAD_REQUEST,
    131049: K.BAD_REQUEST,  # Meta chose not to deliver (per-user marketing cap): no retry today
    131051: K.BAD_REQUEST,
    131052: K.BAD_REQUEST,
    131053: K.BAD_REQUEST,
    135000: K.BAD_REQUEST,
    132000: K.TEMPLATE_PROBLEM,
    132001: K.TEMPLATE_PROBLEM,
    132005: K.TEMPLATE_PROBLEM,
    132007: K.TEMPLATE_PROBLEM,
    132012: K.TEMPLATE_PROBLEM,
    132015: K.TEMPLATE_PROBLEM,
    132016: K.TEMPLATE_PROBLEM,
}
# Meta sends no Retry-After; these are conservative waits per code.
DEFAULT_RETRY_AFTER: dict[int, float] = {130429: 1.0, 131056: 6.0, 4: 60.0, 80007: 60.0}


def classify(code: int | None, http_status: int | None = None) -> ErrorKind:
    """ErrorKind for a Graph error code (falls back on the HTTP status only for unknown codes)."""
    if code is not None:
        kind = ERROR_KINDS.get(code)
        if kind is not None:
            return kind
        if 200 <= code <= 299:  # API permission missing
            return K.ACCOUNT_PROBLEM
    if http_status is None:
        return K.BAD_REQUEST
    if http_status == 429:
        return K.RATE_LIMITED
    if http_status >= 500:
        return K.TEMPORARY
    if http_status == 401:
        return K.BAD_CREDENTIALS
    if http_status == 403:
        return K.ACCOUNT_PROBLEM
    return K.BAD_REQUEST


def graph_root(api_base: str) -> str:
    """`https://graph.facebook.com/v23.0`, or api_base as given when it already ends in a version."""
    base = (api_base or DEFAULT_API_BASE).rstrip("/")
    return base if VERSIONED.search(base) else f"{base}/{API_VERSION}"


def as_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WebhookParseError(f"{what} is not an object")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise WebhookParseError(f"{what} is not a list")
    return value


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def as_code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():  # not "²"
        return int(value.strip())
    return None
