"""One POST of an outgoing webhook: to the address that was checked, never anywhere else.

The URL's name is resolved once (core.netguard.resolve), every address it gives must be public,
and the connection goes to the first of them: the request carries the name in its Host header
and, over HTTPS, in the TLS handshake (SNI) and certificate check, so a second lookup that could
answer differently (DNS rebinding) never happens. Redirects are not followed (http.client never
does); a 3xx counts as a failure like any other non-2xx. The answer is read up to READ_LIMIT
bytes within the time limit, and only a short excerpt of it is kept.

Tests may let one loopback receiver through over plain http (settings.OUTGOING_WEBHOOK_TEST_RECEIVER,
"127.0.0.1:<port>", off by default and refused by the production settings).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext_noop

from core import netguard

TIMEOUT_SECONDS = 10.0
READ_LIMIT = 4096  # bytes of the answer we read at most; 200 characters of it are kept

URL_INVALID = gettext_noop(
    "The address {url} is not a plain https:// URL. Write it as https://host/path, without user name or password."
)
URL_NOT_HTTPS = gettext_noop("The address {url} does not use https://. Outgoing webhooks are only sent over HTTPS.")
URL_IP_SPELLING = gettext_noop(
    "The address {url} spells an IP address in an unusual way. Use the host name, or the address as a.b.c.d."
)
URL_NOT_PUBLIC = gettext_noop(
    "The address {url} points to {address}, which is not a public internet address (local, private, "
    "link-local, shared or metadata range). Use an address that can be reached from the internet."
)
URL_NOT_RESOLVED = gettext_noop("The host name in {url} cannot be resolved. Check the spelling, or try again later.")


class RefusedError(Exception):
    """The URL or the address it resolves to is not allowed. `template` and `params` say why
    (English, marked for translation), as core.errors.ApplicationError takes them."""

    def __init__(self, template: str, **params: str) -> None:
        self.template = template
        self.params = params
        super().__init__(template.format(**params))


@dataclass(frozen=True)
class Target:
    parts: netguard.UrlParts
    address: str  # where we connect
    path: str  # path and query of the request


def _test_receiver(address: str, port: int) -> bool:
    allowed: str = settings.OUTGOING_WEBHOOK_TEST_RECEIVER
    return bool(allowed) and allowed == f"{address}:{port}"


def target_check(url: str, *, resolve: bool = True) -> Target:
    """The address to post `url` to, or RefusedError. Run when the URL is saved and before each post."""
    shown = url[:200] if url.isprintable() else ascii(url[:200])
    parts = netguard.url_parts(url)
    if parts is None:
        raise RefusedError(URL_INVALID, url=shown)
    if netguard.ipv4_spelling(parts.host):
        raise RefusedError(URL_IP_SPELLING, url=shown)
    literal = netguard.ip_literal(parts.host)
    if literal is not None:
        addresses = [literal]
    elif not resolve:
        addresses = []
    else:
        try:
            addresses = netguard.resolve(parts.host, parts.port)
        except netguard.ResolveError:
            raise RefusedError(URL_NOT_RESOLVED, url=shown) from None
    test_receiver = bool(addresses) and all(_test_receiver(str(a), parts.port) for a in addresses)
    if parts.scheme != "https" and not test_receiver:
        raise RefusedError(URL_NOT_HTTPS, url=shown)
    for address in addresses:
        if not test_receiver and not netguard.address_is_public(address):
            raise RefusedError(URL_NOT_PUBLIC, url=shown, address=str(address))
    split = urlsplit(url)
    path = (split.path or "/") + (f"?{split.query}" if split.query else "")
    return Target(parts=parts, address=str(addresses[0]) if addresses else "", path=path)


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (timeout, refused connection, TLS error)
    body: bytes
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        # the name, not the address: SNI and the certificate check are for the host we were given
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def post(target: Target, body: bytes, headers: dict[str, str], *, timeout: float = TIMEOUT_SECONDS) -> Answer:
    """POST `body` to `target` within `timeout` seconds in all (connect, send, answer)."""
    started = time.monotonic()
    deadline = started + timeout
    parts = target.parts
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = _PinnedHTTPS(
            parts.host, parts.port, address=target.address, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        connection = _PinnedHTTP(parts.host, parts.port, address=target.address, timeout=timeout)
    status: int | None = None
    chunks: list[bytes] = []
    error = ""
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        status = response.status
        received = 0
        while received < READ_LIMIT:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if connection.sock is not None:
                connection.sock.settimeout(left)
            chunk = response.read1(READ_LIMIT - received)
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
    except TimeoutError:
        error = "timeout" if status is None else ""
    except ssl.SSLError as exc:
        error = f"TLS: {exc.reason or exc.__class__.__name__}"
    except (OSError, http.client.HTTPException) as exc:
        if status is None:
            error = f"{exc.__class__.__name__}: {exc}"[:200]
    finally:
        connection.close()
    return Answer(
        status=status, body=b"".join(chunks), error=error, duration_ms=int((time.monotonic() - started) * 1000)
    )
