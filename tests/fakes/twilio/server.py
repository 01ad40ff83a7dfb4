"""`FakeTwilio`: accounts, numbers, the opt-out registry, the REST handlers (send, fetch, account),
signed status callbacks and simulated inbound messages."""

from __future__ import annotations

import base64
import hmac
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from email.utils import formatdate
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from tests.fakes.common import (
    CommonSettings,
    Delivery,
    FakeServer,
    Fault,
    MediaStore,
    json_response,
    serve_media,
)
from tests.fakes.twilio.protocol import (
    API_VERSION,
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_NUMBER,
    DEFAULT_SERVICE_SID,
    ERRORS,
    HELP_WORDS,
    SERVICE_PATTERN,
    START_WORDS,
    STOP_WORDS,
    TO_PATTERN,
    TwilioSettings,
    twilio_error,
    twilio_signature,
)


class FakeTwilio(FakeServer):
    name: ClassVar[str] = "twilio"
    settings_class: ClassVar[type[CommonSettings]] = TwilioSettings
    settings: TwilioSettings

    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        numbers: Iterable[str] = (DEFAULT_NUMBER,),
        services: Mapping[str, Iterable[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.accounts = {account_sid: auth_token}
        self.account_sid = account_sid
        self.numbers = list(numbers)
        default_services = {DEFAULT_SERVICE_SID: list(self.numbers)}
        self.services = {k: list(v) for k, v in (services or default_services).items()}
        self.optouts: set[tuple[str, str]] = set()  # (sender number or MG sid, recipient)
        self.messages: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.media = MediaStore()  # media sid (ME…) -> file of an inbound message

    def reset_state(self) -> None:
        self.optouts.clear()
        self.messages.clear()
        self.media.clear()

    def recipient_key(self, recipient: str) -> str:
        return recipient

    def default_fault(self, kind: str) -> Fault:
        if kind == "5xx":
            return Fault("5xx", code=20500, http_status=500)
        if kind == "rate_limit":
            return Fault("rate_limit", code=20429, http_status=429)
        if kind == "async_fail":
            return Fault("async_fail", code=30003)
        if kind == "error":
            return Fault("error", code=21211)
        return Fault(kind)

    def config_extra(self) -> dict[str, Any]:
        return {
            "account_sid": self.account_sid,
            "numbers": self.numbers,
            "services": self.services,
            "optouts": sorted(list(pair) for pair in self.optouts),
        }

    # ------------------------------------------------------------------ routes
    def add_routes(self, app: web.Application) -> None:
        base = f"/{API_VERSION}/Accounts/{{account}}"
        app.router.add_post(base + "/Messages.json", self._handle_send)
        app.router.add_get(base + "/Messages/{sid}.json", self._handle_fetch)
        app.router.add_get(base + ".json", self._handle_account)
        app.router.add_get(base + "/Messages/{sid}/Media/{media_sid}", self._handle_media)
        app.router.add_get("/cdn/{account}/{media_sid}", self._handle_cdn)

    def control_routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", "/optouts", lambda p: {"optouts": sorted(list(pair) for pair in self.optouts)}),
            ("POST", "/optouts", lambda p: self._set_optout(**p)),
        ]

    def _account(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        expected = self.accounts.get(user)
        if expected is None or not hmac.compare_digest(expected, password):
            return None
        if user != request.match_info["account"]:
            return None
        return user

    def _finish(self, entry: dict[str, Any], response: web.Response, outcome: str) -> web.Response:
        entry["status"] = response.status
        if outcome != "ok":
            self.stats.outcomes[outcome] += 1
        self.stats.http_status[response.status] += 1
        return response

    async def _handle_send(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        raw = await request.read()
        try:
            pairs = parse_qsl(raw.decode(), keep_blank_values=True)
        except UnicodeDecodeError:
            pairs = []
        params: dict[str, Any] = {}
        media: list[str] = []
        for key, value in pairs:
            if key == "MediaUrl":
                media.append(value)
            else:
                params[key] = value
        if media:
            params["MediaUrl"] = media
        to = params.get("To", "")
        entry = self.log.add(request, params, kind="send", recipient=to, now=now)
        self.stats.attempt(now)
        account = self._account(request)
        if account is None:
            return self._finish(entry, twilio_error(20003), "error:20003")
        problem = self._validate(params, media)
        if problem is not None:
            return self._finish(entry, twilio_error(*problem), f"error:{problem[0]}")
        sender = params.get("MessagingServiceSid") or params.get("From", "")
        if (sender, to) in self.optouts:
            return self._finish(entry, twilio_error(21610), "error:21610")
        async_fail: int | None = None
        fault = self.faults.pick(to)
        if fault is not None:
            if fault.kind == "async_fail":
                async_fail = fault.code
            else:
                response = await self._fault_response(request, fault)
                if response is None:
                    self.stats.outcomes["fault:reset"] += 1
                    return web.Response()
                return self._finish(entry, response, f"fault:{fault.kind}")
        if self.limiter.try_acquire(sender, now) is not None:
            return self._finish(entry, twilio_error(20429), "error:20429")
        self.stats.accepted(now)
        resource = self._resource(account, params, media)
        self._store(resource)
        self.record_sent({**resource, "status_callback": params.get("StatusCallback", ""), "async_error": async_fail})
        response = json_response(resource, 201)  # serialized before instant statuses update the resource
        callback = params.get("StatusCallback", "")
        if callback:
            self._schedule_statuses(account, resource, callback, async_fail)
        return self._finish(entry, response, "ok")

    def _validate(self, params: Mapping[str, Any], media: list[str]) -> tuple[int, str] | None:
        to = params.get("To", "")
        if not to:
            return 21604, ""
        if not params.get("From") and not params.get("MessagingServiceSid"):
            return 21603, ""
        if not params.get("Body") and not media and not params.get("ContentSid"):
            return 21602, ""
        if len(params.get("Body", "")) > 1600:
            return 21617, ""
        if not TO_PATTERN.fullmatch(to):
            return 21211, f"Invalid 'To' Phone Number: {to}"
        service = params.get("MessagingServiceSid")
        if service and (not SERVICE_PATTERN.fullmatch(service) or service not in self.services):
            return 21701, ""
        sender = params.get("From", "")
        if sender and self.settings.strict_senders and sender.removeprefix("whatsapp:") not in self.numbers:
            return 21606, ""
        callback = params.get("StatusCallback", "")
        if callback and not callback.startswith(("http://", "https://")):
            return 21609, f"Invalid StatusCallback url: {callback}"
        return None

    async def _fault_response(self, request: web.Request, fault: Fault) -> web.Response | None:
        if fault.kind in ("timeout", "reset"):
            if await self.apply_transport_fault(request, fault):
                return None
            return twilio_error(20500, http_status=504)
        if fault.kind == "rate_limit":
            response = twilio_error(fault.code or 20429, http_status=fault.http_status or 429)
            if fault.retry_after:
                response.headers["Retry-After"] = str(math.ceil(fault.retry_after))
            return response
        return twilio_error(fault.code or 20500, fault.message, fault.http_status)

    def _resource(self, account: str, params: Mapping[str, Any], media: list[str]) -> dict[str, Any]:
        sid = ("MM" if media else "SM") + uuid.uuid4().hex
        body = params.get("Body", "")
        service = params.get("MessagingServiceSid") or None
        now = formatdate(usegmt=False)
        segments = 1 if len(body) <= 160 else math.ceil(len(body) / 153)
        base = f"/{API_VERSION}/Accounts/{account}/Messages/{sid}"
        return {
            "sid": sid,
            "account_sid": account,
            "messaging_service_sid": service,
            "from": params.get("From") or None,
            "to": params["To"],
            "body": body,
            "status": "accepted" if service else "queued",
            "direction": "outbound-api",
            "num_segments": str(segments),
            "num_media": str(len(media)),
            "price": None,
            "price_unit": "USD",
            "error_code": None,
            "error_message": None,
            "api_version": API_VERSION,
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "uri": base + ".json",
            "subresource_uris": {"media": base + "/Media.json", "feedback": base + "/Feedback.json"},
        }

    def _store(self, resource: dict[str, Any]) -> None:
        self.messages[resource["sid"]] = resource
        while len(self.messages) > self.settings.sent_cap:
            self.messages.popitem(last=False)

    async def _handle_fetch(self, request: web.Request) -> web.Response:
        entry = self.log.add(request, None, kind="fetch")
        if self._account(request) is None:
            return self._finish(entry, twilio_error(20003), "error:20003")
        resource = self.messages.get(request.match_info["sid"])
        if resource is None:
            return self._finish(entry, twilio_error(20404), "error:20404")
        return self._finish(entry, json_response(resource), "fetch")

    async def _handle_media(self, request: web.Request) -> web.StreamResponse:
        """A MediaUrl: Basic auth, then a 307 to the (pre-signed) CDN address, or the file itself."""
        entry = self.log.add(request, None, kind="media")
        if self._account(request) is None:
            return self._finish(entry, twilio_error(20003), "error:20003")
        media_sid = request.match_info["media_sid"]
        item = self.media.live(media_sid)
        if item is None:
            return self._finish(entry, twilio_error(20404), "error:20404")
        if self.settings.media_redirect:
            base = self.settings.media_cdn_base or self.url
            location = f"{base}/cdn/{request.match_info['account']}/{media_sid}?Expires={int(time.time()) + 300}"
            return self._finish(entry, web.Response(status=307, headers={"Location": location}), "media_redirect")
        entry["status"] = 200
        return await serve_media(request, item)

    async def _handle_cdn(self, request: web.Request) -> web.StreamResponse:
        entry = self.log.add(request, None, kind="media_cdn")
        item = self.media.live(request.match_info["media_sid"])
        if item is None:
            return self._finish(entry, web.Response(status=404, text="Not Found"), "error:404")
        entry["status"] = 200
        return await serve_media(request, item)

    def _add_media(self, media_sid: str, content: bytes, mime_type: str, chunked: bool) -> None:
        self.media.add(media_sid, content, mime_type, chunked=chunked)

    def add_media(self, content: bytes, mime_type: str, *, chunked: bool = False) -> str:
        """Store a file as if a person had sent it by MMS; returns its MediaUrl."""
        message_sid, media_sid = "MM" + uuid.uuid4().hex, "ME" + uuid.uuid4().hex
        self._call(self._add_media, media_sid, content, mime_type, chunked)
        return f"{self.url}/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message_sid}/Media/{media_sid}"

    def expire_media(self, media_url: str) -> None:
        """The message's media was deleted: the MediaUrl answers 404 (code 20404)."""
        self._call(self.media.expire, media_url.rstrip("/").rpartition("/")[2])

    async def _handle_account(self, request: web.Request) -> web.Response:
        entry = self.log.add(request, None, kind="account")
        account = self._account(request)
        if account is None:
            return self._finish(entry, twilio_error(20003), "error:20003")
        created = formatdate(0, usegmt=False)
        data = {
            "sid": account,
            "owner_account_sid": account,
            "friendly_name": "Stadt Musterstadt",
            "status": self.settings.account_status,
            "type": "Full",
            "date_created": created,
            "date_updated": created,
            "uri": f"/{API_VERSION}/Accounts/{account}.json",
            "subresource_uris": {"messages": f"/{API_VERSION}/Accounts/{account}/Messages.json"},
        }
        return self._finish(entry, json_response(data), "account")

    # ------------------------------------------------------------------ webhooks
    def _schedule_statuses(self, account: str, resource: dict[str, Any], url: str, fail: int | None) -> None:
        settings = self.settings
        if fail:
            names = ["undelivered" if 30000 <= fail < 31000 else "failed"]
            delays = [settings.delay("failed")]
        else:
            names = list(settings.statuses)
            if resource["to"].startswith("whatsapp:") and "read" not in names:
                names.append("read")
            delays = [settings.delay(name) for name in names]
            if settings.reorder_rate and len(names) > 1 and self.rng.random() < settings.reorder_rate:
                delays.sort()
                self.rng.shuffle(names)
        for name, delay in zip(names, delays, strict=True):
            self.scheduler.later(delay, self._emit_status, account, resource, url, name, fail)
            if settings.duplicate_rate and self.rng.random() < settings.duplicate_rate:
                self.scheduler.later(
                    delay + settings.delay("duplicate"), self._emit_status, account, resource, url, name, fail
                )

    def _emit_status(self, account: str, resource: dict[str, Any], url: str, status: str, fail: int | None) -> None:
        sender = resource["from"]
        if not sender:
            numbers = self.services.get(resource["messaging_service_sid"] or "", self.numbers)
            sender = numbers[0] if numbers else DEFAULT_NUMBER
            if resource["to"].startswith("whatsapp:"):
                sender = "whatsapp:" + sender
        params = {
            "SmsSid": resource["sid"],
            "SmsStatus": status,
            "MessageStatus": status,
            "To": resource["to"],
            "MessageSid": resource["sid"],
            "AccountSid": account,
            "From": sender,
            "ApiVersion": API_VERSION,
        }
        if resource["messaging_service_sid"]:
            params["MessagingServiceSid"] = resource["messaging_service_sid"]
        if fail and status in ("failed", "undelivered"):
            params["ErrorCode"] = str(fail)
            resource["error_code"] = fail
            resource["error_message"] = ERRORS.get(fail, (400, ""))[1]
        if status in ("delivered", "undelivered") and not resource["to"].startswith("whatsapp:"):
            params["RawDlrDoneDate"] = time.strftime("%y%m%d%H%M", time.gmtime())
        resource["status"] = status
        self._post_form(account, url, params)

    def _post_form(self, account: str, url: str, params: Mapping[str, str]) -> bytes:
        body = urlencode(params).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(self.accounts[account], url, params),
            "I-Twilio-Idempotency-Token": uuid.uuid4().hex,
        }
        self.submit_webhook(Delivery(url=url, body=body, headers=headers))
        return body

    def simulate_inbound(
        self,
        sender: str = "+491701234567",
        text: str = "",
        *,
        kind: str = "text",
        to: str = "",
        messaging_service_sid: str = "",
        media_urls: Iterable[str] = (),
        media_types: Iterable[str] = (),
        payload: str = "",
        profile_name: str = "Erika",
        latitude: float = 52.52,
        longitude: float = 13.405,
        **aliases: Any,
    ) -> dict[str, Any]:
        """A person texts our number (kinds: text, media, button, location). STOP/START keywords
        update the opt-out registry like Twilio's default handling."""
        sender = str(aliases.pop("from", sender))
        if "body" in aliases:
            text = str(aliases.pop("body"))
        if aliases:
            raise ValueError(f"unknown inbound parameters: {sorted(aliases)}")
        whatsapp = sender.startswith("whatsapp:")
        to = to or (("whatsapp:" if whatsapp else "") + (self.numbers[0] if self.numbers else DEFAULT_NUMBER))
        number = to.removeprefix("whatsapp:")
        services = [mg for mg, nums in self.services.items() if number in nums]
        service = messaging_service_sid or (services[0] if services else "")
        sid = "SM" + uuid.uuid4().hex
        media = list(media_urls)
        types = list(media_types) or ["image/jpeg"] * len(media)
        params: dict[str, str] = {
            "ToCountry": "DE",
            "ToState": "",
            "SmsMessageSid": sid,
            "NumMedia": str(len(media)),
            "ToCity": "",
            "FromZip": "",
            "SmsSid": sid,
            "FromState": "",
            "SmsStatus": "received",
            "FromCity": "",
            "Body": text,
            "FromCountry": "DE",
            "To": to,
            "ToZip": "",
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": sender,
            "ApiVersion": API_VERSION,
        }
        if service:
            params["MessagingServiceSid"] = service
        for index, url in enumerate(media):
            params[f"MediaUrl{index}"] = url
            params[f"MediaContentType{index}"] = types[index] if index < len(types) else "image/jpeg"
        if whatsapp:
            params["ProfileName"] = profile_name
            params["WaId"] = sender.removeprefix("whatsapp:+").removeprefix("whatsapp:")
        if kind == "button":
            params["ButtonText"] = text
            params["ButtonPayload"] = payload
        elif kind == "location":
            params["Latitude"] = str(latitude)
            params["Longitude"] = str(longitude)
        elif kind not in ("text", "media"):
            raise ValueError(f"unknown inbound kind {kind!r}")
        keyword = text.strip().upper()
        scopes = [to, number, *services] + ([messaging_service_sid] if messaging_service_sid else [])
        if keyword in STOP_WORDS:
            self.optouts.update((scope, sender) for scope in scopes)
            if self.settings.advanced_opt_out:
                params["OptOutType"] = "STOP"
        elif keyword in START_WORDS:
            self.optouts.difference_update((scope, sender) for scope in scopes)
            if self.settings.advanced_opt_out:
                params["OptOutType"] = "START"
        elif keyword in HELP_WORDS and self.settings.advanced_opt_out:
            params["OptOutType"] = "HELP"
        url = self.settings.inbound_url or self.settings.webhook_url
        if not url:
            self.stats.webhook_dropped += 1
            return {"sid": sid, "params": params, "body": None}
        body = self._post_form(self.account_sid, url, params)
        return {"sid": sid, "params": params, "body": body.decode()}

    def _set_optout(self, sender: str, recipient: str, opted_out: bool = True) -> dict[str, Any]:
        if opted_out:
            self.optouts.add((sender, recipient))
        else:
            self.optouts.discard((sender, recipient))
        return {"optouts": sorted(list(pair) for pair in self.optouts)}

    # ------------------------------------------------------------------ in-process API
    def opt_out(self, recipient: str, sender: str = DEFAULT_NUMBER, *, opted_out: bool = True) -> None:
        """Set the opt-out registry directly (without a webhook)."""
        self._call(self._set_optout, sender, recipient, opted_out)

    def is_opted_out(self, recipient: str, sender: str = DEFAULT_NUMBER) -> bool:
        return self._call(lambda: (sender, recipient) in self.optouts)
