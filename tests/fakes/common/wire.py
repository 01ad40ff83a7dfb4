"""JSON as the fakes put it on the wire (compact, ASCII-escaped: the form Meta signs)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

JSON_TYPE = "application/json"


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes, non-ASCII escaped (the form Meta signs; harmless for the others)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()


def json_response(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(obj), status=status, content_type=JSON_TYPE, headers=headers)
