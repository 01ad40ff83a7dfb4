"""`FakeWhatsApp`: the Graph API request handlers (send, mark-as-read, number lookup, template
list) with their validation and fault responses, on top of `WhatsAppState`."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from tests.fakes.common import (
    Fault,
    json_response,
    serve_media,
)
from tests.fakes.whatsapp.protocol import (
    API_VERSION_PATTERN,
    MEDIA_TYPES,
    MESSAGE_TYPES,
    PHONE,
    PLACEHOLDER,
    digits,
    graph_error,
)
from tests.fakes.whatsapp.state import WhatsAppState


class FakeWhatsApp(WhatsAppState):
    """The fake WhatsApp Cloud API (see the package docstring)."""

    # ------------------------------------------------------------------ routes
    def add_routes(self, app: web.Application) -> None:
        version = "{version:" + API_VERSION_PATTERN + "}"
        app.router.add_post(f"/{version}/{{pnid}}/messages", self._handle_messages)
        app.router.add_get(f"/{version}/{{waba_id}}/message_templates", self._handle_templates)
        app.router.add_get(f"/{version}/{{object_id}}", self._handle_lookup)
        app.router.add_get("/whatsapp_business/attachments/", self._handle_media_download)
        app.router.add_post("/_fake/handshake", self._control_handshake)

    def control_routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", "/window", lambda p: self._set_window(**p)),
            ("GET", "/templates", lambda p: {"templates": list(self.templates.values())}),
            ("POST", "/templates", lambda p: self._add_template(p)),
            ("POST", "/template_status", lambda p: self._set_template_status(**p)),
            ("POST", "/numbers", lambda p: vars(self._register_number(**p))),
            ("POST", "/synthesize", lambda p: self._synthesize(**p)),
        ]

    async def _handle_messages(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            entry = self.log.add(request, raw.decode("utf-8", "replace"), kind="send", now=now)
            return self._finish(entry, graph_error(100, message="Invalid JSON body"), "error:100")
        if body.get("status") == "read" and "message_id" in body:
            entry = self.log.add(request, body, kind="mark_read", now=now)
            return self._mark_read(request, body, entry)
        to = body.get("to")
        wa_id = digits(to) if isinstance(to, str) else ""
        entry = self.log.add(request, body, kind="send", recipient=wa_id, now=now)
        self.stats.attempt(now)
        if not self._authorized(request):
            return self._finish(entry, graph_error(190), "error:190")
        number = self._number(request.match_info["pnid"])
        if number is None:
            return self._unknown_object(entry, request.match_info["pnid"], "post")
        invalid = self._validate(body)
        if invalid is not None:
            return self._finish(entry, graph_error(invalid[0], details=invalid[1]), f"error:{invalid[0]}")
        async_fail: int | None = None
        fault = self.faults.pick(wa_id)
        if fault is not None:
            if fault.kind == "async_fail":
                async_fail = fault.code
            else:
                response = await self._fault_response(request, fault)
                if response is None:  # connection already reset: nothing will be sent
                    self.stats.outcomes["fault:reset"] += 1
                    return web.Response()
                return self._finish(entry, response, f"fault:{fault.kind}")
        wait = self.limiter.try_acquire(number.id, now)
        if wait is not None:
            return self._finish(entry, graph_error(130429, http_status=self.settings.rate_limit_status), "error:130429")
        if self.settings.pair_limit and self.pair_limiter.try_acquire(f"{number.id}:{wa_id}", now) is not None:
            return self._finish(entry, graph_error(131056), "error:131056")
        message_type = body.get("type", "text")
        category = "service"
        template_status = ""
        if message_type == "template":
            problem, template = self._check_template(body.get("template"))
            if problem is not None:
                return self._finish(entry, graph_error(problem[0], details=problem[1]), f"error:{problem[0]}")
            assert template is not None
            category = template["category"].lower()
            template_status = "accepted"
        elif async_fail is None and self.settings.enforce_window and not self.window_open(wa_id):
            async_fail = 131047
        wamid = self._new_wamid(wa_id)
        self.stats.accepted(now)
        reference = body.get("biz_opaque_callback_data") or ""
        self.record_sent(
            {
                "id": wamid,
                "to": to,
                "wa_id": wa_id,
                "type": message_type,
                "phone_number_id": number.id,
                "reference": reference,
                "body": body,
                "at": time.time(),
                "async_error": async_fail,
            }
        )
        self._schedule_statuses(number.id, wamid, wa_id, reference, async_fail, category)
        message: dict[str, Any] = {"id": wamid}
        if template_status:
            message["message_status"] = template_status
        result = {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": wa_id}], "messages": [message]}
        return self._finish(entry, json_response(result), "accepted_async_fail" if async_fail else "ok")

    def _finish(self, entry: dict[str, Any], response: web.Response, outcome: str) -> web.Response:
        entry["status"] = response.status
        if outcome != "ok":
            self.stats.outcomes[outcome] += 1
        self.stats.http_status[response.status] += 1
        return response

    def _unknown_object(self, entry: dict[str, Any], object_id: str, verb: str) -> web.Response:
        message = (
            f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be loaded due to "
            "missing permissions, or does not support this operation."
        )
        return self._finish(entry, graph_error(100, message=message, subcode=33), "error:100")

    async def _fault_response(self, request: web.Request, fault: Fault) -> web.Response | None:
        if fault.kind in ("timeout", "reset"):
            if await self.apply_transport_fault(request, fault):
                return None
            return graph_error(2, http_status=504)
        if fault.kind == "rate_limit":
            headers = {"Retry-After": str(math.ceil(fault.retry_after))} if fault.retry_after else None
            response = graph_error(
                fault.code or 130429, http_status=fault.http_status or self.settings.rate_limit_status
            )
            if headers:
                response.headers.update(headers)
            return response
        return graph_error(fault.code or 131000, http_status=fault.http_status, message=fault.message)

    def _validate(self, body: Mapping[str, Any]) -> tuple[int, str] | None:
        if body.get("messaging_product") != "whatsapp":
            return 100, "The parameter messaging_product is required and must be 'whatsapp'."
        to = body.get("to")
        if not isinstance(to, str) or not to:
            return 131008, "The parameter to is required."
        if not PHONE.fullmatch(to):
            return 100, "Invalid parameter: to must be a phone number with country code."
        message_type = body.get("type", "text")
        if message_type not in MESSAGE_TYPES:
            return 131051, f"Unsupported message type {message_type!r}."
        reference = body.get("biz_opaque_callback_data")
        if reference is not None and (not isinstance(reference, str) or len(reference) > 512):
            return 100, "biz_opaque_callback_data must be a string of at most 512 characters."
        payload = body.get(message_type)
        if message_type == "template":
            return None  # checked against the catalogue later
        if not isinstance(payload, dict):
            return 131008, f"The parameter {message_type} is required."
        if message_type == "text":
            text = payload.get("body")
            if not isinstance(text, str) or not text:
                return 131008, "The parameter text['body'] is required."
            if len(text) > 4096:
                return 100, "text['body'] is longer than 4096 characters."
        elif message_type in MEDIA_TYPES:
            if ("id" in payload) == ("link" in payload):
                return 100, f"Exactly one of {message_type}['id'] or {message_type}['link'] is required."
            if len(str(payload.get("caption", ""))) > 1024:
                return 100, "caption is longer than 1024 characters."
        elif message_type == "interactive":
            return self._validate_interactive(payload)
        return None

    @staticmethod
    def _validate_interactive(payload: Mapping[str, Any]) -> tuple[int, str] | None:
        body = payload.get("body")
        if not isinstance(body, dict) or not body.get("text"):
            return 131008, "The parameter interactive['body']['text'] is required."
        if len(str(body["text"])) > 1024:
            return 131009, "interactive['body']['text'] is longer than 1024 characters."
        action = payload.get("action")
        if not isinstance(action, dict):
            return 131008, "The parameter interactive['action'] is required."
        kind = payload.get("type")
        if kind == "button":
            buttons = action.get("buttons")
            if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
                return 131009, "interactive buttons: between 1 and 3 buttons are required."
            titles = []
            for button in buttons:
                reply = button.get("reply") if isinstance(button, dict) else None
                if not isinstance(reply, dict) or not reply.get("id") or not reply.get("title"):
                    return 131008, "Each button needs reply.id and reply.title."
                if len(str(reply["title"])) > 20 or len(str(reply["id"])) > 256:
                    return 131009, "Button title must be at most 20 characters and id at most 256."
                titles.append(reply["title"])
            if len(set(titles)) != len(titles):
                return 131009, "Button titles must be unique."
        elif kind == "cta_url":
            params = action.get("parameters")
            if action.get("name") != "cta_url" or not isinstance(params, dict):
                return 131008, "cta_url needs action.name 'cta_url' and parameters."
            if not params.get("display_text") or not str(params.get("url", "")).startswith(("http://", "https://")):
                return 131009, "cta_url needs display_text and an http(s) url."
        elif kind not in ("list", "product", "product_list", "flow", "location_request_message"):
            return 131009, f"Unsupported interactive type {kind!r}."
        return None

    def _check_template(self, template: Any) -> tuple[tuple[int, str] | None, dict[str, Any] | None]:
        if not isinstance(template, dict):
            return (131008, "The parameter template is required."), None
        name = template.get("name")
        language = template.get("language")
        code = language.get("code") if isinstance(language, dict) else None
        if not isinstance(name, str) or not isinstance(code, str) or not name or not code:
            return (131008, "template name and language.code are required."), None
        entry = self.templates.get((name, code))
        if entry is None or entry["status"] in ("PENDING", "REJECTED", "IN_APPEAL"):
            return (132001, f"template name ({name}) does not exist in {code}"), None
        if entry["status"] == "PAUSED":
            return (132015, f"Template {name} is paused."), None
        if entry["status"] == "DISABLED":
            return (132016, f"Template {name} is disabled."), None
        components = template.get("components") or []
        if not isinstance(components, list) or not all(isinstance(c, dict) for c in components):
            return (100, "template components must be a list of objects."), None
        given: dict[str, list[Any]] = {}
        buttons: dict[str, list[Any]] = {}
        for component in components:
            params = component.get("parameters") or []
            if not isinstance(params, list):
                return (100, "component parameters must be a list."), None
            kind = str(component.get("type", "")).lower()
            if kind == "button":
                buttons[str(component.get("index"))] = params
            else:
                given.setdefault(kind, []).extend(params)
        for component in entry["components"]:
            kind = str(component.get("type", "")).upper()
            if kind == "BODY":
                expected = len(set(PLACEHOLDER.findall(str(component.get("text", "")))))
                if len(given.get("body", [])) != expected:
                    return (132000, f"body expects {expected} parameters, got {len(given.get('body', []))}"), None
            elif kind == "HEADER" and str(component.get("format", "TEXT")).upper() in ("IMAGE", "VIDEO", "DOCUMENT"):
                header_format = str(component["format"]).lower()
                header = given.get("header", [])
                if len(header) != 1:
                    return (132000, f"header expects one {header_format} parameter"), None
                if not isinstance(header[0], dict) or header[0].get("type") != header_format:
                    return (132012, f"header parameter must be of type {header_format}"), None
            elif kind == "BUTTONS":
                for index, button in enumerate(component.get("buttons") or []):
                    templated = button.get("type") == "URL" and PLACEHOLDER.search(str(button.get("url", "")))
                    if templated and len(buttons.get(str(index), [])) != 1:
                        return (132000, f"URL button {index} expects one parameter"), None
        return None, entry

    def _mark_read(self, request: web.Request, body: Mapping[str, Any], entry: dict[str, Any]) -> web.Response:
        if not self._authorized(request):
            return self._finish(entry, graph_error(190), "error:190")
        if self._number(request.match_info["pnid"]) is None:
            return self._unknown_object(entry, request.match_info["pnid"], "post")
        if body.get("message_id") not in self.inbound_ids:
            return self._finish(entry, graph_error(131009, details="Invalid message_id."), "error:131009")
        return self._finish(entry, json_response({"success": True}), "mark_read")

    async def _handle_lookup(self, request: web.Request) -> web.Response:
        entry = self.log.add(request, None, kind="lookup")
        if not self._authorized(request):
            return self._finish(entry, graph_error(190), "error:190")
        object_id = request.match_info["object_id"]
        if object_id in self.media.items:
            return self._media_info(entry, request, object_id)
        number = self._number(object_id)
        if number is None:
            return self._unknown_object(entry, object_id, "get")
        data = {
            "verified_name": number.verified_name,
            "code_verification_status": "VERIFIED",
            "display_phone_number": number.display_phone_number,
            "quality_rating": number.quality_rating,
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
            "id": number.id,
        }
        wanted = request.query.get("fields")
        if wanted:
            keys = {f.strip() for f in wanted.split(",")} | {"id"}
            data = {k: v for k, v in data.items() if k in keys}
        return self._finish(entry, json_response(data), "lookup")

    def _media_info(self, entry: dict[str, Any], request: web.Request, media_id: str) -> web.Response:
        """GET /{media-id}: a short-lived download URL and what the file is; a deleted file's id
        is answered like any unknown object (error 100, subcode 33)."""
        item = self.media.live(media_id)
        if item is None:
            return self._unknown_object(entry, media_id, "get")
        base = self.settings.media_url_base or self.url
        url = f"{base}/whatsapp_business/attachments/?mid={media_id}&ext={int(time.time())}&hash=ATu{media_id[-6:]}"
        data = {
            "messaging_product": "whatsapp",
            "url": url,
            "mime_type": item.mime_type,
            "sha256": hashlib.sha256(item.content).hexdigest(),
            "file_size": len(item.content),
            "id": media_id,
        }
        return self._finish(entry, json_response(data), "media")

    async def _handle_media_download(self, request: web.Request) -> web.StreamResponse:
        """The CDN's download: needs the same bearer token; an expired or unknown file is a 404."""
        entry = self.log.add(request, None, kind="media_download")
        if not self._authorized(request):
            return self._finish(entry, web.Response(status=401, text="Unauthorized"), "error:401")
        item = self.media.live(request.query.get("mid", ""))
        if item is None:
            return self._finish(entry, web.Response(status=404, text="Not Found"), "error:404")
        entry["status"] = 200
        self.stats.http_status[200] += 1
        return await serve_media(request, item)

    async def _handle_templates(self, request: web.Request) -> web.Response:
        entry = self.log.add(request, None, kind="templates")
        if not self._authorized(request):
            return self._finish(entry, graph_error(190), "error:190")
        waba_id = request.match_info["waba_id"]
        if self.settings.strict_numbers and waba_id != self.waba_id:
            return self._unknown_object(entry, waba_id, "get")
        items = list(self.templates.values())
        for key in ("name", "status", "language", "category"):
            if key in request.query:
                items = [t for t in items if str(t[key]).lower() == request.query[key].lower()]
        try:
            limit = max(1, min(int(request.query.get("limit", "25")), 1000))
            start = (
                int(base64.b64decode(request.query["after"]).decode().split(":")[1]) + 1
                if "after" in request.query
                else 0
            )
        except (ValueError, IndexError, UnicodeDecodeError):
            return self._finish(entry, graph_error(100, message="Invalid paging parameters"), "error:100")
        page = items[start : start + limit]
        result: dict[str, Any] = {"data": page}
        if page:
            cursors = {
                "before": base64.b64encode(f"idx:{start}".encode()).decode(),
                "after": base64.b64encode(f"idx:{start + len(page) - 1}".encode()).decode(),
            }
            result["paging"] = {"cursors": cursors}
            if start + len(page) < len(items):
                result["paging"]["next"] = str(request.url.update_query(after=cursors["after"], limit=str(limit)))
        return self._finish(entry, json_response(result), "templates")
