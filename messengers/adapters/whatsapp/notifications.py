"""WhatsApp webhook notifications: the phone number ids a body is for (routing, before the
signature can be checked) and the status and inbound-message events of a verified body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from messengers.adapters._http import load_json_body, unix_time
from messengers.adapters.base import InboundMessage, StatusEvent, WebhookEvent, WebhookParseError
from messengers.adapters.whatsapp.graph import as_code, as_list, as_object, as_text, classify

if TYPE_CHECKING:
    from messengers.adapters.base import InboundKind, StatusName

STATUS_NAMES: dict[str, StatusName] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "played": "read",
    "failed": "failed",
}
MEDIA_KINDS = frozenset({"image", "video", "audio", "document", "sticker"})


def whatsapp_routing_ids(body: bytes) -> set[str]:
    """Every `metadata.phone_number_id` in a webhook body (to find the tenant before verifying)."""
    data = load_json_body(body)
    if not isinstance(data, dict):
        raise WebhookParseError("not a JSON object")
    ids: set[str] = set()
    for entry in as_list(data.get("entry"), "entry"):
        for change in as_list(as_object(entry, "entry").get("changes"), "changes"):
            value = as_object(change, "change").get("value")
            if not isinstance(value, dict):
                continue
            metadata = value.get("metadata")
            if isinstance(metadata, dict):
                pnid = as_text(metadata.get("phone_number_id"))
                if pnid:
                    ids.add(pnid)
    return ids


def parse_notification(body: bytes) -> list[WebhookEvent]:
    """The events of a verified webhook body (statuses and inbound messages of every number)."""
    data = load_json_body(body)
    if not isinstance(data, dict) or data.get("object") != "whatsapp_business_account":
        raise WebhookParseError("not a WhatsApp Business Account notification")
    events: list[WebhookEvent] = []
    for entry in as_list(data.get("entry"), "entry"):
        for change in as_list(as_object(entry, "entry").get("changes"), "changes"):
            change = as_object(change, "change")
            if change.get("field") != "messages":
                continue
            value = as_object(change.get("value"), "value")
            metadata = value.get("metadata")
            account = as_text(metadata.get("phone_number_id")) if isinstance(metadata, dict) else ""
            names: dict[str, str] = {}
            for contact in as_list(value.get("contacts"), "contacts"):
                if isinstance(contact, dict):
                    profile = contact.get("profile")
                    if isinstance(profile, dict):
                        names[as_text(contact.get("wa_id"))] = as_text(profile.get("name"))
            for status in as_list(value.get("statuses"), "statuses"):
                event = status_event(as_object(status, "status"), account)
                if event is not None:
                    events.append(event)
            events.extend(
                inbound_message(as_object(m, "message"), names, account)
                for m in as_list(value.get("messages"), "messages")
            )
    return events


def status_event(item: Mapping[str, Any], account: str = "") -> StatusEvent | None:
    wamid = as_text(item.get("id"))
    if not wamid:
        raise WebhookParseError("status without id")
    status = STATUS_NAMES.get(as_text(item.get("status")))
    if status is None:
        return None  # a status we do not track (e.g. "deleted", "warning")
    code: int | None = None
    title = ""
    for error in as_list(item.get("errors"), "errors"):
        if isinstance(error, dict):
            code = as_code(error.get("code"))
            title = as_text(error.get("title")) or as_text(error.get("message"))
            break
    failed = status == "failed"
    return StatusEvent(
        provider_message_id=wamid,
        status=status,
        at=unix_time(item.get("timestamp")),
        recipient=as_text(item.get("recipient_id")) or as_text(item.get("recipient_user_id")),
        error_code="" if code is None else str(code),
        error_title=title,
        error_kind=classify(code) if failed and code is not None else None,
        reference=as_text(item.get("biz_opaque_callback_data")),
        account_id=account,
    )


def inbound_message(message: Mapping[str, Any], names: Mapping[str, str], account: str = "") -> InboundMessage:
    wamid = as_text(message.get("id"))
    if not wamid:
        raise WebhookParseError("message without id")
    sender = as_text(message.get("from"))
    at = unix_time(message.get("timestamp"))
    mtype = as_text(message.get("type"))
    piece = message.get(mtype) if mtype else None
    context = message.get("context")
    reply_to = as_text(context.get("id")) if isinstance(context, dict) else ""
    kind: InboundKind = "unknown"
    text = ""
    payload: dict[str, Any] = {"type": mtype, "message": dict(message)}
    if mtype == "text" and isinstance(piece, dict):
        kind, text, payload = "text", as_text(piece.get("body")), {}
    elif mtype in MEDIA_KINDS and isinstance(piece, dict):
        kind = cast("InboundKind", mtype)
        text, payload = as_text(piece.get("caption")), dict(piece)
    elif mtype == "location" and isinstance(piece, dict):
        kind = "location"
        payload = {k: piece.get(k) for k in ("latitude", "longitude", "name", "address", "url") if k in piece}
        text = as_text(piece.get("name")) or as_text(piece.get("address"))
    elif mtype == "contacts" and isinstance(piece, list):
        kind, payload = "contacts", {"contacts": piece}
        first = piece[0] if piece and isinstance(piece[0], dict) else {}
        name = first.get("name")
        text = as_text(name.get("formatted_name")) if isinstance(name, dict) else ""
    elif mtype == "reaction" and isinstance(piece, dict):
        kind, text = "reaction", as_text(piece.get("emoji"))
        payload = {"message_id": as_text(piece.get("message_id")), "emoji": text}
        reply_to = payload["message_id"]
    elif mtype == "button" and isinstance(piece, dict):
        kind, text = "button", as_text(piece.get("text"))
        payload = {"payload": as_text(piece.get("payload")), "text": text}
    elif mtype == "interactive" and isinstance(piece, dict):
        kind = "interactive"
        itype = as_text(piece.get("type"))
        reply = piece.get(itype) if itype else None
        if itype in ("button_reply", "list_reply") and isinstance(reply, dict):
            text = as_text(reply.get("title"))
            payload = {
                "type": itype,
                "payload": as_text(reply.get("id")),
                "title": text,
                "description": as_text(reply.get("description")),
            }
        else:
            payload = {"type": itype, "interactive": dict(piece)}
    return InboundMessage(
        provider_message_id=wamid,
        sender=sender,
        at=at,
        kind=kind,
        text=text,
        sender_name=names.get(sender, ""),
        payload=payload,
        reply_to_provider_id=reply_to,
        account_id=account,
    )
