"""`WhatsAppState`: the WhatsApp fake without its Graph API handlers: phone numbers, templates,
customer-service windows, status webhooks (batched per number, signed), simulated inbound
messages, the extra control routes' helpers and the in-process API."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import aiohttp
from aiohttp import web

from tests.fakes.common import (
    CommonSettings,
    Delivery,
    FakeServer,
    Fault,
    MediaStore,
    SlidingWindowLimiter,
    dumps,
    json_response,
)
from tests.fakes.whatsapp.protocol import (
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_APP_SECRET,
    DEFAULT_DISPLAY_NUMBER,
    DEFAULT_PHONE_NUMBER_ID,
    DEFAULT_TEMPLATES,
    DEFAULT_WABA_ID,
    ERROR_HREF,
    GRAPH_ERRORS,
    MEDIA_TYPES,
    PhoneNumber,
    WhatsAppSettings,
    digits,
    sign,
)


class WhatsAppState(FakeServer):
    name: ClassVar[str] = "whatsapp"
    settings_class: ClassVar[type[CommonSettings]] = WhatsAppSettings
    settings: WhatsAppSettings

    def __init__(
        self,
        *,
        app_secret: str = DEFAULT_APP_SECRET,
        access_token: str | Iterable[str] = DEFAULT_ACCESS_TOKEN,
        phone_number_id: str | Iterable[str] | None = DEFAULT_PHONE_NUMBER_ID,
        waba_id: str = DEFAULT_WABA_ID,
        templates: Iterable[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.app_secret = app_secret
        self.tokens = {access_token} if isinstance(access_token, str) else set(access_token)
        self.waba_id = waba_id
        self.numbers: dict[str, PhoneNumber] = {}
        ids = [phone_number_id] if isinstance(phone_number_id, str) else list(phone_number_id or ())
        for index, pnid in enumerate(ids):
            self.numbers[pnid] = PhoneNumber(id=pnid, display_phone_number=str(15550783881 + index), waba_id=waba_id)
        self._initial_numbers = dict(self.numbers)
        self._initial_templates = [dict(t) for t in (DEFAULT_TEMPLATES if templates is None else templates)]
        self.templates: dict[tuple[str, str], dict[str, Any]] = {}
        self._load_templates(self._initial_templates)
        self.windows: dict[str, float] = {}  # wa_id -> wall time of the last inbound message
        self.inbound_ids: set[str] = set()
        self.media = MediaStore()  # media id -> file of an inbound message
        self.pair_limiter = SlidingWindowLimiter(None)
        self._seq = 0
        self._salt = uuid.uuid4().hex[:8].upper()

    # ------------------------------------------------------------------ state
    def _load_templates(self, items: Iterable[Mapping[str, Any]]) -> None:
        self.templates = {}
        for item in items:
            self._add_template(item)

    def _add_template(self, item: Mapping[str, Any]) -> dict[str, Any]:
        template: dict[str, Any] = {
            "name": str(item["name"]),
            "language": str(item["language"]),
            "status": str(item.get("status", "APPROVED")).upper(),
            "category": str(item.get("category", "UTILITY")).upper(),
            "id": str(
                item.get("id")
                or int(hashlib.sha256(f"{item['name']}/{item['language']}".encode()).hexdigest()[:12], 16)
            ),
            "parameter_format": str(item.get("parameter_format", "POSITIONAL")),
            "components": [dict(c) for c in item.get("components") or [{"type": "BODY", "text": item.get("body", "")}]],
        }
        self.templates[(template["name"], template["language"])] = template
        return template

    def reset_state(self) -> None:
        self.numbers = dict(self._initial_numbers)
        self._load_templates(self._initial_templates)
        self.windows.clear()
        self.inbound_ids.clear()
        self.media.clear()
        self.pair_limiter.clear()

    def on_settings_changed(self, changed: set[str]) -> None:
        if not changed or changed & {"pair_limit", "pair_window"}:
            self.pair_limiter = SlidingWindowLimiter(self.settings.pair_limit or None, self.settings.pair_window)
        if self._batcher is not None:
            self._batcher.size = max(1, self.settings.batch_size)
            self._batcher.linger = self.settings.batch_linger

    def recipient_key(self, recipient: str) -> str:
        return digits(recipient)

    def default_fault(self, kind: str) -> Fault:
        if kind == "5xx":
            return Fault("5xx", code=131000, http_status=500)
        if kind == "rate_limit":
            return Fault("rate_limit", code=130429)
        if kind == "async_fail":
            return Fault("async_fail", code=131026)
        if kind == "error":
            return Fault("error", code=131026)
        return Fault(kind)

    def config_extra(self) -> dict[str, Any]:
        return {
            "phone_numbers": {k: vars(v) for k, v in self.numbers.items()},
            "waba_id": self.waba_id,
            "windows": dict(self.windows),
        }

    def _number(self, pnid: str) -> PhoneNumber | None:
        number = self.numbers.get(pnid)
        if number is None and not self.settings.strict_numbers and pnid.isdigit():
            number = self.numbers[pnid] = PhoneNumber(
                id=pnid, display_phone_number="1555" + pnid[-7:].rjust(7, "0"), waba_id=self.waba_id
            )
        return number

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        token = header[7:].strip()
        if not token:
            return False
        return not self.tokens or token in self.tokens

    def window_open(self, wa_id: str) -> bool:
        last = self.windows.get(wa_id)
        return last is not None and time.time() - last < self.settings.window_hours * 3600

    def _new_wamid(self, wa_id: str) -> str:
        self._seq += 1
        raw = f"{wa_id}_{self._salt}{self._seq:012d}".encode()
        return "wamid." + base64.b64encode(raw).decode()

    # ------------------------------------------------------------------ webhooks
    def _schedule_statuses(
        self, pnid: str, wamid: str, wa_id: str, reference: str, fail: int | None, category: str
    ) -> None:
        settings = self.settings
        names = ["failed"] if fail else list(settings.statuses)
        number = self.numbers.get(pnid)
        if not ((number.webhook_url if number else None) or settings.webhook_url):
            self.stats.webhook_dropped += len(names)  # nobody to tell: skip the work (benchmarks)
            return
        delays = sorted(settings.delay(name) for name in names)
        if settings.reorder_rate and len(names) > 1 and self.rng.random() < settings.reorder_rate:
            self.rng.shuffle(names)
        else:
            delays = [settings.delay(name) for name in names]
        for name, delay in zip(names, delays, strict=True):
            self.scheduler.later(delay, self._emit_status, pnid, wamid, name, wa_id, reference, fail, category)
            if settings.duplicate_rate and self.rng.random() < settings.duplicate_rate:
                extra = delay + settings.delay("duplicate")
                self.scheduler.later(extra, self._emit_status, pnid, wamid, name, wa_id, reference, fail, category)

    def _emit_status(
        self, pnid: str, wamid: str, status: str, wa_id: str, reference: str, fail: int | None, category: str
    ) -> None:
        item: dict[str, Any] = {
            "id": wamid,
            "status": status,
            "timestamp": str(int(time.time())),
            "recipient_id": wa_id,
        }
        if reference:
            item["biz_opaque_callback_data"] = reference
        if status == "failed" and fail:
            title, _status, details = GRAPH_ERRORS.get(fail, ("Unknown error", 400, ""))
            item["errors"] = [
                {"code": fail, "title": title, "message": title, "error_data": {"details": details}, "href": ERROR_HREF}
            ]
        else:
            item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": category, "type": "regular"}
        self.batcher.add(pnid, item)

    def batch_flush(self, key: str, items: list[Any]) -> None:
        if self.settings.reorder_rate and len(items) > 1 and self.rng.random() < self.settings.reorder_rate:
            self.rng.shuffle(items)
        self.push_value(key, {"statuses": items}, events=len(items))

    def envelope(self, pnid: str, value: Mapping[str, Any]) -> dict[str, Any]:
        number = self._number(pnid) or PhoneNumber(id=pnid)
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": number.waba_id,
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": number.display_phone_number,
                                    "phone_number_id": pnid,
                                },
                                **value,
                            },
                        }
                    ],
                }
            ],
        }

    def push_value(self, pnid: str, value: Mapping[str, Any], *, events: int = 1) -> bytes | None:
        """Sign and queue one webhook POST with this `value`; returns the exact bytes (None: no target)."""
        number = self._number(pnid)
        url = (number.webhook_url if number else None) or self.settings.webhook_url
        if not url:
            self.stats.webhook_dropped += events
            return None
        body = dumps(self.envelope(pnid, value))
        secret = (number.app_secret if number else None) or self.app_secret
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(secret, body)}
        self.submit_webhook(Delivery(url=url, body=body, headers=headers, events=events))
        return body

    def simulate_inbound(
        self,
        sender: str = "491701234567",
        kind: str = "text",
        text: str = "",
        *,
        payload: str = "",
        context_id: str = "",
        name: str = "Erika Muster",
        phone_number_id: str = "",
        media_id: str = "",
        mime_type: str = "",
        media_content: bytes | None = None,
        filename: str = "",
        voice: bool = False,
        latitude: float = 52.52,
        longitude: float = 13.405,
        message: Mapping[str, Any] | None = None,
        message_id: str = "",
        open_window: bool = True,
        **aliases: Any,
    ) -> dict[str, Any]:
        """Push an inbound message webhook (kinds: text, image, video, audio, document, sticker,
        location, contacts, reaction, button, interactive, list_reply, unsupported, raw)."""
        sender = str(aliases.pop("from", sender))
        if aliases:
            raise ValueError(f"unknown inbound parameters: {sorted(aliases)}")
        pnid = phone_number_id or next(iter(self.numbers), DEFAULT_PHONE_NUMBER_ID)
        number = self._number(pnid) or PhoneNumber(id=pnid)
        wa_id = digits(sender)
        wamid = message_id or "wamid." + base64.b64encode(f"IN_{wa_id}_{uuid.uuid4().hex}".encode()).decode()
        msg: dict[str, Any] = {"from": wa_id, "id": wamid, "timestamp": str(int(time.time()))}
        if kind == "raw":
            msg.update(message or {})
        elif kind == "text":
            msg.update(type="text", text={"body": text or "Hallo"})
        elif kind in MEDIA_TYPES:
            media: dict[str, Any] = {
                "id": media_id or str(uuid.uuid4().int)[:16],
                "mime_type": mime_type or {"image": "image/jpeg", "video": "video/mp4"}.get(kind, "application/pdf"),
                "sha256": hashlib.sha256(wamid.encode()).hexdigest(),
            }
            if text:
                media["caption"] = text
            if filename and kind == "document":
                media["filename"] = filename
            if voice and kind == "audio":
                media["voice"] = True
            if media_content is not None:
                self.media.add(media["id"], media_content, media["mime_type"], filename=filename)
            msg.update(type=kind, **{kind: media})
        elif kind == "location":
            msg.update(type="location", location={"latitude": latitude, "longitude": longitude, "name": text})
        elif kind == "contacts":
            msg.update(
                type="contacts",
                contacts=[
                    {
                        "name": {"formatted_name": text or "Max Muster", "first_name": "Max"},
                        "phones": [{"phone": "+49 170 7654321", "wa_id": "491707654321", "type": "CELL"}],
                    }
                ],
            )
        elif kind == "reaction":
            msg.update(type="reaction", reaction={"message_id": context_id, "emoji": text})
        elif kind == "button":
            msg.update(type="button", button={"payload": payload, "text": text})
            msg["context"] = {"from": number.display_phone_number, "id": context_id}
        elif kind in ("interactive", "button_reply"):
            msg.update(
                type="interactive", interactive={"type": "button_reply", "button_reply": {"id": payload, "title": text}}
            )
            msg["context"] = {"from": number.display_phone_number, "id": context_id}
        elif kind == "list_reply":
            reply = {"id": payload, "title": text, "description": ""}
            msg.update(type="interactive", interactive={"type": "list_reply", "list_reply": reply})
            msg["context"] = {"from": number.display_phone_number, "id": context_id}
        elif kind == "unsupported":
            msg.update(
                type="unsupported",
                errors=[{"code": 131051, "title": "Message type unknown", "message": "Message type unknown"}],
            )
        else:
            raise ValueError(f"unknown inbound kind {kind!r}")
        if context_id and "context" not in msg and kind != "reaction":
            msg["context"] = {"from": number.display_phone_number, "id": context_id}
        if open_window:
            self.windows[wa_id] = time.time()
        self.inbound_ids.add(wamid)
        value = {"contacts": [{"profile": {"name": name}, "wa_id": wa_id}], "messages": [msg]}
        body = self.push_value(pnid, value)
        return {"id": wamid, "body": None if body is None else body.decode()}

    # ------------------------------------------------------------------ control helpers
    def _set_window(
        self, recipient: str, open: bool = True, age_hours: float | None = None, **_: Any
    ) -> dict[str, Any]:
        wa_id = digits(recipient)
        if not open:
            self.windows.pop(wa_id, None)
        else:
            self.windows[wa_id] = time.time() - (age_hours or 0.0) * 3600
        return {"recipient": wa_id, "open": self.window_open(wa_id)}

    def _set_template_status(self, name: str, language: str, status: str) -> dict[str, Any]:
        template = self.templates[(name, language)]
        template["status"] = status.upper()
        return template

    def _register_number(
        self,
        phone_number_id: str,
        display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
        verified_name: str = "Stadt Musterstadt",
        app_secret: str | None = None,
        webhook_url: str | None = None,
        waba_id: str | None = None,
    ) -> PhoneNumber:
        number = PhoneNumber(
            id=phone_number_id,
            display_phone_number=display_phone_number,
            verified_name=verified_name,
            waba_id=waba_id or self.waba_id,
            app_secret=app_secret,
            webhook_url=webhook_url,
        )
        self.numbers[phone_number_id] = number
        return number

    def _synthesize(
        self,
        count: int = 1,
        statuses: Iterable[str] = ("sent", "delivered", "read"),
        phone_number_id: str = "",
        recipient: str = "491700000000",
    ) -> dict[str, Any]:
        """Push status events for `count` made-up messages (webhook ingestion benchmarks)."""
        pnid = phone_number_id or next(iter(self.numbers), DEFAULT_PHONE_NUMBER_ID)
        wamids = []
        for _ in range(int(count)):
            wamid = self._new_wamid(digits(recipient))
            wamids.append(wamid)
            for name in statuses:
                self._emit_status(pnid, wamid, name, digits(recipient), "", None, "utility")
        return {"count": len(wamids), "first": wamids[0] if wamids else None}

    async def _control_handshake(self, request: web.Request) -> web.Response:
        params = await request.json() if request.can_read_body else {}
        result = await self._handshake(str(params["verify_token"]), params.get("url"), params.get("challenge"))
        return json_response(result)

    async def _handshake(
        self, verify_token: str, url: str | None = None, challenge: str | None = None
    ) -> dict[str, Any]:
        """Meta's GET verification request; ok when the endpoint echoes the challenge with 200."""
        target = url or self.settings.webhook_url
        challenge = challenge or str(self.rng.randint(10**9, 2 * 10**9))
        query = {"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token}
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(target, params=query) as response:
            text = await response.text()
        return {"ok": response.status == 200 and text == challenge, "status": response.status, "body": text[:200]}

    # ------------------------------------------------------------------ in-process API
    def handshake(self, verify_token: str, url: str | None = None, challenge: str | None = None) -> dict[str, Any]:
        assert self._loop is not None, "start() the fake first"
        return asyncio.run_coroutine_threadsafe(self._handshake(verify_token, url, challenge), self._loop).result(30)

    def open_window(self, recipient: str, *, age_hours: float = 0.0) -> None:
        """Pretend the person wrote to us `age_hours` ago (older than 24 h = window closed)."""
        self._call(self._set_window, recipient, True, age_hours)

    def close_window(self, recipient: str) -> None:
        self._call(self._set_window, recipient, False)

    def add_template(self, **template: Any) -> dict[str, Any]:
        return self._call(self._add_template, template)

    def set_template_status(self, name: str, language: str, status: str) -> dict[str, Any]:
        return self._call(self._set_template_status, name, language, status)

    def add_media(
        self, content: bytes, mime_type: str, *, media_id: str = "", filename: str = "", chunked: bool = False
    ) -> str:
        """Store a file as if a person had sent it; returns its media id (GET /{media-id})."""
        key = media_id or str(uuid.uuid4().int)[:16]
        self._call(self.media.add, key, content, mime_type, filename=filename, chunked=chunked)
        return key

    def expire_media(self, media_id: str) -> None:
        """Meta deleted the file (about 30 days after it was sent): the id is unknown from now on."""
        self._call(self.media.expire, media_id)

    def register_number(self, phone_number_id: str, **kwargs: Any) -> PhoneNumber:
        return self._call(self._register_number, phone_number_id, **kwargs)

    def synthesize_statuses(self, count: int, **kwargs: Any) -> dict[str, Any]:
        return self._call(self._synthesize, count, **kwargs)
