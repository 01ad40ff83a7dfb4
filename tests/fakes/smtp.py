"""SMTP sink (aiosmtpd) with an HTTP control port, and RFC 8058 one-click unsubscribe helpers.

The sink accepts mail (optionally requiring AUTH PLAIN/LOGIN without TLS), parses every message
with the `email` package and keeps it. Faults: per-recipient RCPT rejections (e.g. 550) and
"fail the next N messages" at DATA (e.g. 451), connection resets and stalls.

    fake = FakeSMTP(username="u", password="p").start()
    ... send to 127.0.0.1:fake.smtp_port ...
    mail = fake.wait_for(1)[0]; mail.header("List-Unsubscribe")
    one_click_unsubscribe(mail.message, encoding="multipart")

HTTP control (same machinery as the HTTP fakes): GET /_fake/messages, POST /_fake/clear,
/_fake/faults, /_fake/stats, /_fake/reset.

    python -m tests.fakes.smtp --port 2525 --http-port 8084 [--username U --password P]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage, Message
from email.policy import default as default_policy
from typing import Any, ClassVar

import requests
from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.fakes.common import CommonSettings, FakeServer, Fault, apply_cli_faults

# aiosmtpd logs every SMTP command (and a warning per connection about AUTH without TLS,
# intended here): a sink taking thousands of mails must stay quiet.
logging.getLogger("mail.log").setLevel(logging.ERROR)

URI_IN_BRACKETS = re.compile(r"<([^<>]+)>")
ONE_CLICK = "List-Unsubscribe=One-Click"


@dataclass
class StoredMail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    received_at: float
    peer: str = ""
    authenticated_as: str = ""

    def header(self, name: str) -> str:
        value = self.message.get(name)
        return "" if value is None else str(value)

    def _part(self, subtype: str) -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        return "" if part is None else str(part.get_content())

    @property
    def text(self) -> str:
        return self._part("plain")

    @property
    def html(self) -> str:
        return self._part("html")

    def summary(self) -> dict[str, Any]:
        return {
            "mail_from": self.mail_from,
            "rcpt_tos": self.rcpt_tos,
            "received_at": self.received_at,
            "authenticated_as": self.authenticated_as,
            "subject": self.header("Subject"),
            "message_id": self.header("Message-ID"),
            "headers": [[k, str(v)] for k, v in self.message.items()],
            "list_unsubscribe": list_unsubscribe_uris(self.message),
            "list_unsubscribe_post": self.header("List-Unsubscribe-Post"),
            "text": self.text,
            "html": self.html,
            "size": len(self.raw),
        }


@dataclass
class SMTPSettings(CommonSettings):
    status_delays: dict[str, float] = field(default_factory=dict)


class _Handler:
    """aiosmtpd handler hooks; all state lives on the FakeSMTP instance."""

    def __init__(self, fake: FakeSMTP) -> None:
        self.fake = fake

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        fake = self.fake
        fault = fake.faults.pick_recipient(address.lower())
        if fault is not None:
            return fake.smtp_reply(fault, recipient=True)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        fake = self.fake
        now = time.monotonic()
        fake.stats.attempt(now)
        fault = fake.faults.pick(None)
        if fault is not None:
            if fault.kind == "reset":
                transport = server.transport
                if isinstance(transport, asyncio.Transport):
                    transport.abort()
                return "421 4.4.2 Connection reset"
            if fault.kind == "timeout":
                await fake.apply_transport_fault_plain(fault)
            reply = fake.smtp_reply(fault, recipient=False)
            fake.stats.outcome(f"fault:{fault.kind}", int(reply[:3]))
            return reply
        raw = envelope.original_content or b""
        if not raw and isinstance(envelope.content, bytes):
            raw = envelope.content
        message = message_from_bytes(raw, policy=default_policy)
        auth = session.auth_data
        mail = StoredMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            raw=raw,
            message=message,
            received_at=time.time(),
            peer=str(session.peer),
            authenticated_as=auth.login.decode() if isinstance(auth, LoginPassword) else "",
        )
        fake.mails.append(mail)
        fake.stats.accepted(now)
        fake.stats.http_status[250] += 1
        return "250 Message accepted for delivery"


class FakeSMTP(FakeServer):
    name: ClassVar[str] = "smtp"
    settings_class: ClassVar[type[CommonSettings]] = SMTPSettings

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        smtp_port: int = 0,
        hostname: str = "fake-smtp.localhost",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.username = username
        self.password = password
        self.smtp_port = smtp_port
        self.hostname = hostname
        self.mails: list[StoredMail] = []
        self._smtp_server: asyncio.base_events.Server | None = None

    # ------------------------------------------------------------------ SMTP side
    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.username is None:
            return AuthResult(success=False, handled=False)
        ok = auth_data.login.decode() == self.username and auth_data.password.decode() == (self.password or "")
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    async def extra_startup(self) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.smtp_port))
        sock.listen(128)
        sock.setblocking(False)
        self.smtp_port = sock.getsockname()[1]
        handler = _Handler(self)

        def factory() -> SMTP:
            # A loopback test sink: plain-text AUTH is intended, so aiosmtpd's warning is noise.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return SMTP(
                    handler,
                    hostname=self.hostname,
                    authenticator=self._authenticate,
                    auth_required=self.username is not None,
                    auth_require_tls=False,
                    timeout=60,
                    loop=loop,
                )

        self._smtp_server = await loop.create_server(factory, sock=sock)

    async def extra_shutdown(self) -> None:
        if self._smtp_server is not None:
            self._smtp_server.close()
            await self._smtp_server.wait_closed()
            self._smtp_server = None

    def smtp_reply(self, fault: Fault, *, recipient: bool) -> str:
        if fault.kind == "rate_limit":
            return "451 4.7.1 " + (fault.message or "Rate limit exceeded, try again later")
        if fault.kind in ("5xx", "timeout"):
            return "554 5.3.0 " + (fault.message or "Transaction failed")
        code = fault.code or (550 if recipient else 451)
        default = "5.1.1 User unknown" if recipient and code >= 500 else "4.3.0 Temporary failure"
        return f"{code} {fault.message or default}"

    async def apply_transport_fault_plain(self, fault: Fault) -> None:
        stopping = self._stopping
        try:
            if stopping is not None:
                await asyncio.wait_for(stopping.wait(), self.settings.timeout_hold)
            else:
                await asyncio.sleep(self.settings.timeout_hold)
        except TimeoutError:
            pass

    def recipient_key(self, recipient: str) -> str:
        return recipient.lower()

    def default_fault(self, kind: str) -> Fault:
        if kind == "error":
            return Fault("error", code=550)
        if kind == "async_fail":
            raise ValueError("SMTP has no asynchronous failures here")
        return Fault(kind)

    def reset_state(self) -> None:
        self.mails.clear()

    def config_extra(self) -> dict[str, Any]:
        return {"smtp_host": self.host, "smtp_port": self.smtp_port, "auth_required": self.username is not None}

    # ------------------------------------------------------------------ HTTP control
    def add_routes(self, app: web.Application) -> None:
        """The SMTP fake has no provider HTTP API: only the control routes."""

    def control_routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", "/messages", lambda p: {"messages": [m.summary() for m in self.mails]}),
            ("POST", "/clear", lambda p: self._clear()),
        ]

    def _clear(self) -> dict[str, Any]:
        self.mails.clear()
        return {"ok": True}

    def simulate_inbound(self, **kwargs: Any) -> dict[str, Any]:
        raise ValueError("the SMTP sink only receives mail")

    def banner(self) -> str:
        return f"smtp fake listening on smtp://{self.host}:{self.smtp_port} (control API: {self.url}/_fake/)"

    # ------------------------------------------------------------------ in-process API
    def messages(self) -> list[StoredMail]:
        return self._call(lambda: list(self.mails))

    def clear(self) -> None:
        self._call(self._clear)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[StoredMail]:
        """Wait until at least `count` messages arrived; returns what is there (maybe fewer)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            items = self.messages()
            if len(items) >= count:
                return items
            time.sleep(0.01)
        return self.messages()

    def reject_recipient(self, address: str, code: int = 550, message: str = "", *, count: int | None = None) -> None:
        self.fail_recipient(address, "error", code=code, message=message, count=count)


# --------------------------------------------------------------------------------------------
# RFC 8058 helpers
# --------------------------------------------------------------------------------------------
class OneClickError(AssertionError):
    """The message or the endpoint does not satisfy RFC 8058 one-click unsubscribe."""


def list_unsubscribe_uris(message: Message | Mapping[str, str]) -> list[str]:
    """The URIs of the List-Unsubscribe header, in order (empty when the header is missing)."""
    value = message.get("List-Unsubscribe")
    return URI_IN_BRACKETS.findall(str(value)) if value else []


def one_click_uri(message: Message | Mapping[str, str]) -> str:
    """The https URI a mailbox provider would POST to; raises OneClickError when RFC 8058 is not met."""
    uris = list_unsubscribe_uris(message)
    if not uris:
        raise OneClickError("no List-Unsubscribe header")
    https = [u for u in uris if u.lower().startswith("https://")]
    if not https:
        raise OneClickError(f"List-Unsubscribe has no https URI: {uris}")
    post = str(message.get("List-Unsubscribe-Post") or "").strip()
    if post != ONE_CLICK:
        raise OneClickError(f"List-Unsubscribe-Post must be {ONE_CLICK!r}, got {post!r}")
    return https[0]


def one_click_unsubscribe(
    message: Message | Mapping[str, str] | str,
    *,
    encoding: str = "multipart",
    rewrite: Callable[[str], str] | None = None,
    timeout: float = 10.0,
) -> requests.Response:
    """POST `List-Unsubscribe=One-Click` like Gmail/Yahoo do, and insist on a non-redirect 2xx.

    `message` is an email message (its headers are checked) or the https URI itself. `encoding` is
    "multipart" (multipart/form-data, the RFC's recommendation) or "urlencoded". `rewrite` maps the
    public https URI onto a local test endpoint (e.g. https://alerts.example.org → http://127.0.0.1:port).
    No cookies, no auth and no redirects are sent or followed.
    """
    uri = message if isinstance(message, str) else one_click_uri(message)
    if isinstance(message, str) and not uri.lower().startswith("https://"):
        raise OneClickError(f"not an https URI: {uri}")
    target = rewrite(uri) if rewrite else uri
    with requests.Session() as session:
        session.trust_env = False
        if encoding == "multipart":
            response = session.post(
                target, files={"List-Unsubscribe": (None, "One-Click")}, allow_redirects=False, timeout=timeout
            )
        elif encoding == "urlencoded":
            response = session.post(
                target,
                data=ONE_CLICK,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                allow_redirects=False,
                timeout=timeout,
            )
        else:
            raise ValueError("encoding must be 'multipart' or 'urlencoded'")
    if 300 <= response.status_code < 400:
        raise OneClickError(f"one-click endpoint answered with a redirect ({response.status_code})")
    if not 200 <= response.status_code < 300:
        raise OneClickError(f"one-click endpoint answered {response.status_code}")
    return response


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="SMTP sink with an HTTP control port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525, help="SMTP port (0 = free port)")
    parser.add_argument("--http-port", type=int, default=0, help="control API port (0 = free port)")
    parser.add_argument("--username", default=None)
    parser.add_argument("--password", default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--error-rate", type=float, default=0.0, help="fraction of messages refused with 554")
    parser.add_argument("--timeout-rate", type=float, default=0.0)
    parser.add_argument("--reset-rate", type=float, default=0.0)
    parser.add_argument("--rate-limit-rate", type=float, default=0.0, help="fraction refused with 451")
    args = parser.parse_args(argv)
    fake = FakeSMTP(
        host=args.host,
        port=args.http_port,
        smtp_port=args.port,
        seed=args.seed,
        username=args.username,
        password=args.password,
    )
    apply_cli_faults(fake, args)
    try:
        asyncio.run(fake.serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
