"""JSON round-trip of normalised webhook events (stored in WebhookEvent.payload).

What a provider sends is arbitrary JSON (or form data) that passed a signature check, not data
PostgreSQL necessarily accepts: text may hold NUL characters or lone UTF-16 surrogates, and
numbers may be non-finite (`Infinity`), and structures may nest arbitrarily deep. `clean` makes
every value storable, so a webhook never fails with a database error after it was verified.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from messengers.adapters.base import ErrorKind, InboundMessage, StatusEvent, WebhookEvent


def event_to_json(event: WebhookEvent) -> dict[str, Any]:
    data: dict[str, Any] = _jsonable(_event_dict(event))
    return data


def _event_dict(event: WebhookEvent) -> dict[str, Any]:
    if isinstance(event, StatusEvent):
        return {
            "type": "status",
            "provider_message_id": event.provider_message_id,
            "status": event.status,
            "at": event.at.isoformat(),
            "recipient": event.recipient,
            "error_code": event.error_code,
            "error_title": event.error_title,
            "error_kind": event.error_kind.value if event.error_kind else "",
            "reference": event.reference,
            "account_id": event.account_id,
        }
    return {
        "type": "inbound",
        "provider_message_id": event.provider_message_id,
        "sender": event.sender,
        "at": event.at.isoformat(),
        "kind": event.kind,
        "text": event.text,
        "sender_name": event.sender_name,
        "payload": dict(event.payload),
        "reply_to_provider_id": event.reply_to_provider_id,
        "language": event.language,
        "account_id": event.account_id,
    }


def event_from_json(data: dict[str, Any]) -> WebhookEvent:
    if data["type"] == "status":
        return StatusEvent(
            provider_message_id=data["provider_message_id"],
            status=data["status"],
            at=datetime.fromisoformat(data["at"]),
            recipient=data.get("recipient", ""),
            error_code=data.get("error_code", ""),
            error_title=data.get("error_title", ""),
            error_kind=ErrorKind(data["error_kind"]) if data.get("error_kind") else None,
            reference=data.get("reference", ""),
            account_id=data.get("account_id", ""),
        )
    return InboundMessage(
        provider_message_id=data["provider_message_id"],
        sender=data["sender"],
        at=datetime.fromisoformat(data["at"]),
        kind=data["kind"],
        text=data.get("text", ""),
        sender_name=data.get("sender_name", ""),
        payload=data.get("payload", {}),
        reply_to_provider_id=data.get("reply_to_provider_id", ""),
        language=data.get("language", ""),
        account_id=data.get("account_id", ""),
    )


# Nothing a provider documents nests deeper than a few levels; deeper structures (a signed body
# can hold hundreds) would only exhaust the stack when stored, so they are cut off here.
MAX_DEPTH = 32
NESTED_TOO_DEEP = "[nested too deep]"


def clean_text(value: str) -> str:
    """`value` without NUL characters, lone surrogates replaced by U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value


def _jsonable(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict | list | tuple) and depth >= MAX_DEPTH:
        return NESTED_TOO_DEEP
    if isinstance(value, dict):
        return {clean_text(str(k)): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return clean_text(str(value))


def clean(value: Any) -> Any:
    """A JSON-like value PostgreSQL stores as jsonb (see the module docstring)."""
    return _jsonable(value)
