"""HTTP plumbing shared by the HTTP provider adapters (WhatsApp, Telegram, Twilio).

One `requests.Session` per thread (connection pooling for the synchronous path), one request
helper for each of requests and aiohttp that both return the same `RawResponse`, so each
adapter's response-interpreting code is shared between `send` and `send_async`. Network failures
become `ProviderError(TEMPORARY)` whose message names only the kind of failure: never the URL
(Telegram puts the bot token in the path), a secret, or bytes the remote side sent (those go to
the server log, cut short). Redirects are never followed: a provider API does not redirect, and
an allowed host must not be able to send our credentials on to another one (messengers.endpoints).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import urljoin

import aiohttp
import requests
from requests.adapters import HTTPAdapter

from messengers.adapters.base import (
    MEDIA_HOST_REFUSED,
    MEDIA_TOO_LARGE,
    Adapter,
    ErrorKind,
    OutgoingMessage,
    ProviderError,
    SendResult,
    WebhookParseError,
)

logger = logging.getLogger(__name__)
_local = threading.local()
POOL_SIZE = 32
EXCERPT_CHARS = 200  # of a remote answer or error, in the server log
# Values from a provider's answer that may appear in texts people see ("Test connection"): only
# these narrow shapes, never free text (names, descriptions, error messages) the remote chose.
DIGITS = re.compile(r"[0-9]{1,20}")
PHONE_DISPLAY = re.compile(r"\+?[0-9][0-9 ()-]{2,23}")
BOT_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{1,29}[Bb][Oo][Tt]")


def shown(pattern: re.Pattern[str], value: str) -> str:
    """`value` when it has exactly the expected shape, else ""."""
    return value if pattern.fullmatch(value) else ""


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


def excerpt(data: bytes | str, secrets: Iterable[str] = ()) -> str:
    """The start of a remote answer for the server log: decoded, secrets redacted, one line."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = " ".join(redact(text, secrets).split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def describe(exc: BaseException, secrets: Iterable[str]) -> str:
    """The exception's type for messages people see; its text (which may quote bytes the remote
    side sent, e.g. a broken chunk header) only in the server log."""
    logger.info("provider request failed: %s: %s", type(exc).__name__, excerpt(str(exc), secrets))
    return type(exc).__name__


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
        response = http_session().request(
            method, url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        )
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
        async with session.request(
            method, url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        ) as response:
            data = await response.read()
            return RawResponse(response.status, data, response.headers.get("Retry-After"))
    except TimeoutError:
        raise ProviderError(ErrorKind.TEMPORARY, f"no answer within {timeout.total:g} s") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise ProviderError(ErrorKind.TEMPORARY, f"network error ({describe(exc, secrets)})") from None


MEDIA_CHUNK = 64 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class Download:
    raw: RawResponse  # the last hop's status and body (an error body too, capped like a file)
    content_type: str  # its Content-Type without parameters, lower-case ("" when absent)


def too_large(max_bytes: int) -> ProviderError:
    return ProviderError(ErrorKind.BAD_REQUEST, f"the file is larger than {max_bytes} bytes", code=MEDIA_TOO_LARGE)


def download_sync(
    url: str,
    *,
    headers: Mapping[str, str],
    timeout: float,
    max_bytes: int,
    allowed: Callable[[str], bool],
    secrets: Iterable[str] = (),
    redirects: int = 0,
) -> Download:
    """GET a file, streamed and cut off at `max_bytes` (ProviderError MEDIA_TOO_LARGE, also when
    Content-Length announces more), every hop checked with `allowed` first (MEDIA_HOST_REFUSED).
    Up to `redirects` redirects are followed, without the Authorization header: a redirect target
    is a pre-signed CDN address, and our credentials stay with the host we sent them to. Each
    read waits at most `timeout`; the whole download at most six times that (at least 30 s)."""
    deadline = time.monotonic() + max(timeout * 6, 30.0)
    hop_headers = dict(headers)
    for hop in range(redirects + 1):
        if not allowed(url):
            raise ProviderError(
                ErrorKind.BAD_REQUEST, "the file's address is not on an allowed host", code=MEDIA_HOST_REFUSED
            )
        try:
            with http_session().get(
                url, headers=hop_headers, timeout=timeout, allow_redirects=False, stream=True
            ) as response:
                if response.status_code in REDIRECTS and hop < redirects:
                    url = urljoin(url, response.headers.get("Location", ""))
                    hop_headers = {k: v for k, v in hop_headers.items() if k.lower() != "authorization"}
                    continue
                announced = response.headers.get("Content-Length", "").strip()
                if announced.isascii() and announced.isdigit() and int(announced) > max_bytes:
                    raise too_large(max_bytes)
                chunks: list[bytes] = []
                received = 0
                for chunk in response.iter_content(MEDIA_CHUNK):
                    received += len(chunk)
                    if received > max_bytes:
                        raise too_large(max_bytes)
                    if time.monotonic() > deadline:
                        raise ProviderError(ErrorKind.TEMPORARY, "the download took too long")
                    chunks.append(chunk)
                content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
                raw = RawResponse(response.status_code, b"".join(chunks), response.headers.get("Retry-After"))
                return Download(raw, content_type)
        except requests.Timeout:
            raise ProviderError(ErrorKind.TEMPORARY, f"no answer within {timeout:g} s") from None
        except requests.RequestException as exc:
            raise ProviderError(ErrorKind.TEMPORARY, f"network error ({describe(exc, secrets)})") from None
    raise ProviderError(ErrorKind.TEMPORARY, "too many redirects")


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
        if not text or not text.isascii() or not text.lstrip("-").isdigit() or len(text) > 12:
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

    def log_answer(self, what: str, raw: RawResponse, *, ok: bool) -> None:
        """What the provider answered to a check/registration/listing, for the operator's log
        (the tenant sees only our summary of it)."""
        logger.log(
            logging.INFO if ok else logging.WARNING,
            "%s %s for connection %s: HTTP %s %s",
            self.provider.value,
            what,
            self.config.connection_id,
            raw.status,
            excerpt(raw.body, self.secrets),
        )


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
