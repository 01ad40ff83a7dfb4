"""E-mail adapter: SMTP through Django's mail classes.

Credentials: host, port, username, password, use_tls ("true"/"1"/"yes"); the sender address is
config.external_id. Each message is an `EmailMultiAlternatives` (plain text, optional HTML part)
sent through a `django.core.mail.backends.smtp.EmailBackend` built from those credentials and kept
open per thread (checked with NOOP after an idle spell). Broadcasts carry RFC 8058 one-click
unsubscribe headers when an unsubscribe URL is given:

    List-Unsubscribe: <https://…>, <mailto:…>
    List-Unsubscribe-Post: List-Unsubscribe=One-Click

The Message-ID is derived from the reference (so a resend of the same delivery has the same id)
and is returned as the provider message id, angle brackets included. A message that answers one
of the person's (`reply_to_provider_id`, their Message-ID) carries In-Reply-To and References, so
mail programs thread it.

Inbound mail: a raw RFC 822 message POSTed to the connection's webhook URL, signed with the
credential `inbound_secret` (see messengers.adapters.email_inbound, which also parses it). A
connection without that secret receives no mail.
"""

from __future__ import annotations

import re
import smtplib
import threading
import time
from typing import ClassVar

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.smtp import EmailBackend
from django.core.mail.message import make_msgid

from messengers.adapters._http import SecretSafeAdapter, link_lines
from messengers.adapters.base import (
    CheckResult,
    ConnectionConfig,
    ErrorKind,
    OutgoingMessage,
    Provider,
    ProviderError,
    SendResult,
    WebhookEvent,
    WebhookParseError,
    WebhookRequest,
)
from messengers.adapters.email_inbound import (
    SIGNATURE_HEADER,
    Limits,
    message_ids,
    parse_message,
    verify_mail_signature,
)

NOT_IN_ID = re.compile(r"[^A-Za-z0-9._\-]")
IDLE_CHECK_SECONDS = 30.0
ONE_CLICK = "List-Unsubscribe=One-Click"


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _smtp_kind(code: int, permanent: ErrorKind) -> ErrorKind:
    return ErrorKind.TEMPORARY if 400 <= code < 500 else permanent


class EmailAdapter(SecretSafeAdapter):
    provider: ClassVar[Provider] = Provider.EMAIL

    def __init__(self, config: ConnectionConfig) -> None:
        super().__init__(config)
        credentials = config.credentials
        self.host = credentials.get("host", "")
        try:
            self.port = int(credentials.get("port") or 25)
        except ValueError:
            self.port = 0
        self.username = credentials.get("username", "")
        self._password = credentials.get("password", "")
        self.use_tls = _truthy(credentials.get("use_tls", ""))
        self.domain = config.external_id.rpartition("@")[2] or "localhost"
        self._local = threading.local()

    # ------------------------------------------------------------------ SMTP connection
    def _new_backend(self) -> EmailBackend:
        # Every argument explicit: EmailBackend falls back on the EMAIL_* settings for None.
        return EmailBackend(
            host=self.host,
            port=self.port,
            username=self.username,
            password=self._password,
            use_tls=self.use_tls,
            use_ssl=False,
            timeout=self.config.timeout,
            fail_silently=False,
        )

    def _backend(self) -> EmailBackend:
        backend: EmailBackend | None = getattr(self._local, "backend", None)
        if backend is None:
            backend = self._local.backend = self._new_backend()
            self._local.used = 0.0
        if backend.connection is not None and time.monotonic() - self._local.used > IDLE_CHECK_SECONDS:
            try:
                status, _ = backend.connection.noop()
            except (smtplib.SMTPException, OSError):
                status = 0
            if status != 250:
                self._drop_connection()
        return backend

    def _drop_connection(self) -> None:
        backend: EmailBackend | None = getattr(self._local, "backend", None)
        if backend is None:
            return
        try:
            backend.close()
        except (smtplib.SMTPException, OSError):
            pass
        backend.connection = None

    def close(self) -> None:
        """Close this thread's SMTP connection (it is reopened on the next send)."""
        self._drop_connection()

    # ------------------------------------------------------------------ sending
    def message_id(self, reference: str) -> str:
        if not reference:
            return make_msgid(domain=self.domain)
        return f"<{NOT_IN_ID.sub('-', reference)}@{self.domain}>"

    def build_message(self, message: OutgoingMessage, connection: EmailBackend | None = None) -> EmailMultiAlternatives:
        headers = {"Message-ID": self.message_id(message.reference)}
        uris = []
        if message.unsubscribe_url:
            uris.append(f"<{message.unsubscribe_url}>")
        if message.unsubscribe_mailto:
            mailto = message.unsubscribe_mailto
            uris.append(f"<{mailto if mailto.startswith('mailto:') else 'mailto:' + mailto}>")
        if uris:
            headers["List-Unsubscribe"] = ", ".join(uris)
        answered = message_ids(message.reply_to_provider_id)[:1]
        if answered:
            headers["In-Reply-To"] = headers["References"] = answered[0]
        if message.unsubscribe_url.lower().startswith("https://"):
            headers["List-Unsubscribe-Post"] = ONE_CLICK
        text = link_lines(message.text, [b for b in message.buttons if b.url])
        if message.media is not None:
            text = f"{text}\n\n{message.media.url}" if text else message.media.url
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=text,
            from_email=self.config.external_id,
            to=[message.to.strip()],
            headers=headers,
            connection=connection,
        )
        if message.html:
            email.attach_alternative(message.html, "text/html")
        return email

    def send(self, message: OutgoingMessage) -> SendResult:
        if not self.host or not self.port:
            raise ProviderError(ErrorKind.ACCOUNT_PROBLEM, "SMTP host or port is not configured")
        backend = self._open()
        try:
            email = self.build_message(message, backend)
            sent = backend.send_messages([email])
        except ValueError as exc:  # BadHeaderError and friends: this message cannot be sent as is
            raise ProviderError(ErrorKind.BAD_REQUEST, f"invalid message: {type(exc).__name__}: {exc}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            code = min((c for c, _ in exc.recipients.values()), default=550)
            raise ProviderError(
                _smtp_kind(code, ErrorKind.INVALID_RECIPIENT), "recipient refused", code=str(code)
            ) from None
        except smtplib.SMTPSenderRefused as exc:
            raise ProviderError(
                _smtp_kind(exc.smtp_code, ErrorKind.ACCOUNT_PROBLEM), "sender refused", code=str(exc.smtp_code)
            ) from None
        except smtplib.SMTPResponseException as exc:
            self._drop_connection()
            detail = (
                exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            )
            raise ProviderError(
                _smtp_kind(exc.smtp_code, ErrorKind.BAD_REQUEST), f"SMTP error: {detail[:200]}", code=str(exc.smtp_code)
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            self._drop_connection()
            raise ProviderError(ErrorKind.TEMPORARY, f"SMTP connection failed ({type(exc).__name__})") from None
        self._local.used = time.monotonic()
        if sent != 1:
            raise ProviderError(ErrorKind.TEMPORARY, "the SMTP server did not take the message")
        return SendResult(provider_message_id=str(email.extra_headers["Message-ID"]), provider_status="accepted")

    def _open(self) -> EmailBackend:
        """This thread's backend with an open (logged-in) connection; connection-level errors."""
        backend = self._backend()
        try:
            backend.open()
        except smtplib.SMTPAuthenticationError as exc:
            self._drop_connection()
            raise ProviderError(ErrorKind.BAD_CREDENTIALS, "SMTP login rejected", code=str(exc.smtp_code)) from None
        except smtplib.SMTPNotSupportedError:
            self._drop_connection()
            raise ProviderError(
                ErrorKind.ACCOUNT_PROBLEM, "the SMTP server does not support login or STARTTLS"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            self._drop_connection()
            raise ProviderError(ErrorKind.TEMPORARY, f"SMTP connection failed ({type(exc).__name__})") from None
        except ValueError as exc:  # e.g. a host name IDNA cannot encode
            self._drop_connection()
            raise ProviderError(ErrorKind.ACCOUNT_PROBLEM, f"invalid SMTP settings ({type(exc).__name__})") from None
        return backend

    # ------------------------------------------------------------------ inbound mail
    @property
    def receives_mail(self) -> bool:
        """Whether inbound mail is set up (the connection has an inbound secret)."""
        return bool(self.config.credentials.get("inbound_secret"))

    def verify_webhook(self, request: WebhookRequest) -> bool:
        secret = self.config.credentials.get("inbound_secret", "")
        return verify_mail_signature(secret, request.header(SIGNATURE_HEADER), request.body)

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        """One inbound message, or none for automatic mail (bounces, out-of-office replies)."""
        if len(request.body) > settings.EMAIL_INBOUND_MAX_BYTES:
            raise WebhookParseError("message too large")
        limits = Limits(
            part_bytes=settings.EMAIL_INBOUND_MAX_PART_BYTES,
            text_chars=settings.EMAIL_INBOUND_MAX_TEXT_CHARS,
            parts=settings.EMAIL_INBOUND_MAX_PARTS,
        )
        message = parse_message(request.body, limits=limits)
        return [] if message is None else [message]

    # ------------------------------------------------------------------ account
    def check_credentials(self) -> CheckResult:
        if not self.host or not self.port:
            return CheckResult(ok=False, detail="SMTP host or port is missing.")
        where = f"{self.host}:{self.port}"
        backend = self._new_backend()
        try:
            backend.open()
        except smtplib.SMTPAuthenticationError as exc:
            return CheckResult(ok=False, detail=f"Login to {where} rejected (SMTP {exc.smtp_code}).")
        except smtplib.SMTPNotSupportedError:
            return CheckResult(ok=False, detail=f"{where} does not support the configured login or STARTTLS.")
        except smtplib.SMTPException as exc:
            return CheckResult(ok=False, detail=f"SMTP error from {where} ({type(exc).__name__}).")
        except OSError as exc:
            return CheckResult(ok=False, detail=f"Cannot reach SMTP server {where} ({type(exc).__name__}).")
        except ValueError as exc:
            return CheckResult(ok=False, detail=f"Invalid SMTP host {self.host!r} ({type(exc).__name__}).")
        try:
            backend.close()
        except (smtplib.SMTPException, OSError):
            pass
        login = f" as {self.username}" if self.username else " without login"
        tls = " with STARTTLS" if self.use_tls else ""
        return CheckResult(
            ok=True, detail=f"Connected to {where}{login}{tls}", info={"host": self.host, "port": self.port}
        )
