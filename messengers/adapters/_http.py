"""HTTP plumbing shared by the HTTP provider adapters (WhatsApp, Telegram, Twilio).

One `requests.Session` per thread (connection pooling for the synchronous path), one request
helper for each of requests and aiohttp that both return the same `RawResponse`, so each
adapter's response-interpreting code is shared between `send` and `send_async`. Network failures
become `ProviderError(TEMPORARY)` whose message never contains the URL (Telegram puts the bot
token in the path) or any other secret.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import aiohttp
import requests
from requests.adapters import HTTPAdapter

from messengers.adapters.base import (
    Adapter,
    ErrorKind,
    OutgoingMessage,
    ProviderError,
    SendResult,
    WebhookParseError,
)

_local = threading.local()
POOL_SIZE = 32


def http_session() -> requests.Session:
    """The calling thread's pooled session (created on first use)."""
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        # No proxies/.netrc from the environment: explicit Authorization headers must win, and the
        # per-request environment lookup is measurable on the hot path.
        session.trust_env = False
        pool = HTTPAdapter(pool_connections=8, pool_maxsize=POOL_SIZE, max_retries=0)
        session.mount("http://", pool)
        session.mount("https://", pool)
        _local.session = session
    return session


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    body: bytes
    retry_after: str | None = None  # the Retry-After header, if any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The decoded JSON body, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def describe(exc: BaseException, secrets: Iterable[str]) -> str:
    detail = redact(str(exc), secrets)
    return f"{type(exc).__name__}: {detail}"[:300] if detail else type(exc).__name__


def request_sync(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: bytes | None = None,
    timeout: float,
    secrets: Iterable[str] = (),
) -> RawResponse:
    try:
        response = http_session().request(method, url, data=body, headers=headers, timeout=timeout)
    except requests.Timeout:
        raise ProviderError(ErrorKind.TEMPORARY, f"no answer within {timeout:g} s") from None
    except requests.RequestException as exc:
        raise ProviderError(ErrorKind.TEMPORARY, f"network error ({describe(exc, secrets)})") from None
    return RawResponse(response.status_code, response.content, response.headers.get("Retry-After"))


async def request_async(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: bytes | None = None,
    timeout: aiohttp.ClientTimeout,
    secrets: Iterable[str] = (),
) -> RawResponse:
    try:
        async with session.request(method, url, data=body, headers=headers, timeout=timeout) as response:
            data = await response.read()
            return RawResponse(response.status, data, response.headers.get("Retry-After"))
    except TimeoutError:
        raise ProviderError(ErrorKind.TEMPORARY, f"no answer within {timeout.total:g} s") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise ProviderError(ErrorKind.TEMPORARY, f"network error ({describe(exc, secrets)})") from None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def compact_json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def load_json_body(body: bytes) -> Any:
    """Decode a webhook body or raise WebhookParseError."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise WebhookParseError(f"body is not JSON ({type(exc).__name__})") from None


def unix_time(value: Any) -> datetime:
    """A Unix timestamp (int, float or digit string) as an aware UTC datetime."""
    if isinstance(value, bool):
        raise WebhookParseError("timestamp is not a number")
    if isinstance(value, str):
        text = value.strip()
        if not text or not text.lstrip("-").isdigit() or len(text) > 12:
            raise WebhookParseError("timestamp is not a number")
        seconds: float = int(text)
    elif isinstance(value, int | float):
        seconds = value
    else:
        raise WebhookParseError("timestamp is missing")
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise WebhookParseError("timestamp out of range") from exc


def link_lines(text: str, buttons: Iterable[Any]) -> str:
    """Link buttons rendered as "Title: URL" lines under the text (channels without URL buttons)."""
    lines = [f"{b.title}: {b.url}" if b.title else b.url for b in buttons if b.url]
    if not lines:
        return text
    return f"{text}\n\n" + "\n".join(lines) if text else "\n".join(lines)


class SecretSafeAdapter(Adapter):
    """Adapter base whose repr shows the connection, never its credentials."""

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} provider={self.provider.value} connection={self.config.connection_id} "
            f"external_id={self.config.external_id!r}>"
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(str(v) for v in self.config.credentials.values() if v)


class HttpSendAdapter(SecretSafeAdapter):
    """An adapter whose send is one HTTP POST (WhatsApp, Telegram, Twilio). Subclasses say what
    to post (`_post_for`) and how to read the answer (`_send_result`); the blocking path and the
    bulk path (aiohttp) share both. Subclasses set `_secrets` and `_client_timeout`."""

    native_async: ClassVar[bool] = True
    _secrets: tuple[str, ...]
    _client_timeout: aiohttp.ClientTimeout

    def _post_for(self, message: OutgoingMessage) -> tuple[str, Mapping[str, str], bytes]:
        """(url, headers, body) of the request that sends `message`."""
        raise NotImplementedError

    def _send_result(self, raw: RawResponse) -> SendResult:
        raise NotImplementedError

    def send(self, message: OutgoingMessage) -> SendResult:
        url, headers, body = self._post_for(message)
        raw = request_sync("POST", url, headers=headers, body=body, timeout=self.config.timeout, secrets=self._secrets)
        return self._send_result(raw)

    async def send_async(self, session: aiohttp.ClientSession, message: OutgoingMessage) -> SendResult:
        url, headers, body = self._post_for(message)
        raw = await request_async(
            session, "POST", url, headers=headers, body=body, timeout=self._client_timeout, secrets=self._secrets
        )
        return self._send_result(raw)
