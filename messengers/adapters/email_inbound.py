"""Inbound e-mail: the signature of a message posted to /webhooks/email/<route>/, and turning a raw
RFC 822 message into one normalised InboundMessage (or none, for automatic mail).

Signature: `X-Mail-Signature: sha256=<hex>`, HMAC-SHA256 over the raw body with the connection's
credential `inbound_secret` (Meta's scheme; no timestamp, like every other webhook here: a replay
is a no-op because the Message-ID is the event's unique key per connection).

What is read from a message (every step tolerates hostile input; nothing here raises anything but
WebhookParseError, and that only for a message without a usable sender):

- the sender (From, lower-cased) and display name; Message-ID (a hash of the body if missing);
  In-Reply-To and References (threading: our broadcasts' and forwards' Message-IDs); To, Cc,
  Delivered-To and X-Original-To (plus-addressed recipients); subject; Date (clamped);
- the text: the first text/plain part decoded by its charset (unknown or wrong charsets fall back
  to UTF-8, then cp1252, then latin-1), else the first text/html part converted to text; the
  quoted previous message and the signature cut off (`strip_reply`). A message with no body
  takes its subject as text (people write "STOP" in the subject);
- attachments are not kept, only noted (name, type, size) in the payload; attached messages
  (message/rfc822) are attachments too, never read as the body.

Automatic mail (bounces, out-of-office replies: Auto-Submitted, multipart/report, Precedence
bulk/junk, mailer-daemon senders) gives no event: it must neither open conversations after every
broadcast nor use up a department's one-time answer.
"""

from __future__ import annotations

import codecs
import hashlib
import hmac
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

from messengers.adapters.base import InboundKind, InboundMessage, WebhookParseError

SIGNATURE_HEADER = "X-Mail-Signature"
SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")


@dataclass(frozen=True)
class Limits:
    """Size caps (settings EMAIL_INBOUND_*): bytes of a decoded text part that are read,
    characters of text kept, MIME parts looked at."""

    part_bytes: int = 1_000_000
    text_chars: int = 20_000
    parts: int = 200


def mail_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_mail_signature(secret: str, header: str, body: bytes) -> bool:
    """Constant-time check of `X-Mail-Signature`; fails closed without a secret."""
    given = SIGNATURE.fullmatch(header.strip())
    if not secret or given is None:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given.group(1).lower())


# --------------------------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------------------------
MSGID = re.compile(r"<([^<>\s]{1,250})>")
ADDRESS = re.compile(r"[^@\s<>\"(),;:\[\]\\]{1,64}@[^@\s<>\"(),;:\[\]\\]{1,190}")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
HEADER_CHARS = 1000
MAX_ADDRESSES = 50
MAX_REFERENCES = 30
MAX_ATTACHMENTS = 50
# replies' prefixes in subjects, as mail programs write them (English, German, Outlook's)
REPLY_PREFIX = re.compile(r"^\s*((re|aw|antw|wg|fw|fwd|sv)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
AUTOMATIC_SENDERS = ("mailer-daemon@", "postmaster@", "noreply@", "no-reply@", "mail-daemon@")
OUT_OF_OFFICE = re.compile(
    r"^\s*(automatic reply|auto-reply|autoreply|out of office|automatische antwort|abwesenheitsnotiz|"
    r"abwesend|automatische antwort|undeliverable|unzustellbar|delivery status notification)\b",
    re.IGNORECASE,
)


def reply_subject(subject: str, fallback: str) -> str:
    """The subject of an answer: "Re: " and the original subject without its reply prefixes
    ("AW: Re: Frage" → "Re: Frage"), or "Re: " and `fallback` when there was none."""
    bare = REPLY_PREFIX.sub("", subject).strip() or fallback.strip()
    return f"Re: {bare}"[:250] if bare else ""


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes as text: the declared charset if Python knows it as a text encoding and the bytes
    fit it, else UTF-8, else cp1252 (what "latin-1" mail usually is), else latin-1 (never fails)."""
    for name in (charset, "utf-8", "cp1252"):
        if not name:
            continue
        try:
            if not getattr(codecs.lookup(name), "_is_text_encoding", True):
                continue  # rot13, base64 and friends are codecs, not charsets
            return data.decode(name)
        except (LookupError, ValueError, TypeError):  # unknown name, bytes that do not fit, odd codecs
            continue
    return data.decode("latin-1")


def _header(message: Message, name: str) -> str:
    """A header decoded (RFC 2047 words included), on one line, capped."""
    values = _all(message, name)
    return values[0] if values else ""


def _values(message: Message, name: str) -> list[str]:
    """A header's values as received (raw_items: no Header objects, whose str() turns raw 8-bit
    bytes into replacement characters), 8-bit bytes decoded."""
    wanted = name.lower()
    return [_unescape(str(value)) for key, value in message.raw_items() if key.lower() == wanted]


def _all(message: Message, name: str) -> list[str]:
    found = []
    for text in _values(message, name):
        try:
            parts = decode_header(text)
        except (ValueError, LookupError, IndexError):
            parts = [(text, None)]
        decoded = "".join(_decode_bytes(part, charset) if isinstance(part, bytes) else part for part, charset in parts)
        found.append(CONTROL.sub("", " ".join(decoded.split()))[:HEADER_CHARS])
    return found


def _unescape(value: str) -> str:
    """Raw 8-bit bytes in a header (kept by the parser as surrogate escapes) decoded as text."""
    if value.isascii():
        return value
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that is no escape: replace it
        return value.encode("utf-8", "replace").decode("utf-8")
    return _decode_bytes(data, None)


def _raw_header(message: Message, name: str) -> str:
    values = _values(message, name)
    return " ".join(values[0].split())[:HEADER_CHARS] if values else ""


def _addresses(message: Message, *names: str) -> list[str]:
    values = [value for name in names for value in _values(message, name)]
    found: list[str] = []
    for _name, address in getaddresses(values):
        address = address.strip().lower()
        if ADDRESS.fullmatch(address) and address not in found:
            found.append(address)
        if len(found) >= MAX_ADDRESSES:
            break
    return found


def message_ids(value: str) -> list[str]:
    """The `<id>`s in In-Reply-To / References, in order."""
    return [f"<{found}>" for found in MSGID.findall(value)]


def _sent_at(message: Message, now: datetime) -> datetime:
    """The Date header, kept within the last week and never in the future (a wrong clock or
    a forged date must not reorder a person's messages far from when they arrived)."""
    try:
        sent = parsedate_to_datetime(_raw_header(message, "Date"))
    except (TypeError, ValueError, IndexError, OverflowError):
        return now
    if sent is None:
        return now
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    return min(max(sent, now - timedelta(days=7)), now)


def is_automatic(message: Message, sender: str, subject: str) -> bool:
    """Bounces, out-of-office replies and bulk mail (RFC 3834 and the headers Exchange and
    mailing lists set)."""
    auto = _raw_header(message, "Auto-Submitted").lower()
    if auto and auto != "no":
        return True
    if _raw_header(message, "Precedence").lower() in ("bulk", "junk", "list", "auto_reply"):
        return True
    if any(_raw_header(message, name) for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response")):
        return True
    if message.get_content_type() == "multipart/report":
        return True
    return sender.startswith(AUTOMATIC_SENDERS) or bool(OUT_OF_OFFICE.match(subject))


# --------------------------------------------------------------------------------------------
# Body
# --------------------------------------------------------------------------------------------
@dataclass
class _Body:
    plain: str | None = None
    html: str | None = None
    attachments: list[dict[str, Any]] | None = None
    truncated: bool = False


def _leaves(message: Message, limit: int) -> Iterator[Message]:
    """The non-multipart parts, depth first, at most `limit` parts looked at; attached messages
    are leaves (their text is not the body)."""
    stack = [message]
    seen = 0
    while stack and seen < limit:
        part = stack.pop()
        seen += 1
        payload = part.get_payload()
        if part.get_content_type() != "message/rfc822" and isinstance(payload, list):
            stack.extend(item for item in reversed(payload[:limit]) if isinstance(item, Message))
        else:
            yield part


def _disposition(part: Message) -> str:
    return _raw_header(part, "Content-Disposition").split(";")[0].strip().lower()


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or ""
    except (ValueError, LookupError, IndexError, TypeError):
        name = ""
    return CONTROL.sub("", str(name))[:200]


def _read_body(message: Message, limits: Limits) -> _Body:
    body = _Body(attachments=[])
    assert body.attachments is not None
    for part in _leaves(message, limits.parts):
        content_type = part.get_content_type()
        filename = _filename(part)
        attached = _disposition(part) == "attachment" or bool(filename) or content_type == "message/rfc822"
        if not attached and content_type in ("text/plain", "text/html"):
            if (content_type == "text/plain" and body.plain is not None) or (
                content_type == "text/html" and body.html is not None
            ):
                continue
            data = _payload_bytes(part)
            if len(data) > limits.part_bytes:
                data = data[: limits.part_bytes]
                body.truncated = True
            text = _decode_bytes(data, _charset(part))
            if content_type == "text/plain":
                body.plain = text
            else:
                body.html = text
            continue
        if content_type.startswith("multipart/"):
            continue  # a multipart whose payload is not a list: nothing readable
        if len(body.attachments) < MAX_ATTACHMENTS:
            body.attachments.append(
                {"filename": filename, "content_type": content_type[:100], "size": len(_payload_raw(part))}
            )
    return body


def _payload_raw(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):  # an attached message
        return "".join(str(item) for item in payload if isinstance(item, str))
    return payload if isinstance(payload, str) else ""


def _payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except (ValueError, LookupError, TypeError, IndexError):  # odd transfer encodings
        data = None
    if isinstance(data, bytes):
        return data
    return _payload_raw(part).encode("utf-8", "surrogateescape")


def _charset(part: Message) -> str | None:
    try:
        charset = part.get_content_charset()
    except (ValueError, LookupError, TypeError, IndexError):
        return None
    return charset if isinstance(charset, str) and charset.isascii() else None


class _HtmlText(HTMLParser):
    """HTML to plain text: blocks become lines, lists get dashes, blockquotes become `> ` lines
    (so a quoted previous message is stripped like in a plain-text reply), script and style are
    dropped, entities decoded."""

    BLOCKS = frozenset(
        [
            "p",
            "div",
            "br",
            "li",
            "ul",
            "ol",
            "tr",
            "table",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "hr",
            "pre",
            "section",
            "article",
            "header",
            "footer",
            "address",
            "dd",
            "dt",
        ]
    )
    PARAGRAPHS = frozenset({"p", "hr", "table", "h1", "h2", "h3", "h4", "h5", "h6"})
    SKIP = frozenset({"script", "style", "head", "title", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []
        self.current: list[str] = []
        self.depth = 0
        self.skipping = 0

    def flush(self, paragraph: bool = False) -> None:
        line = " ".join("".join(self.current).split())
        if line:
            self.lines.append((self.depth, line))
        if paragraph and self.lines and self.lines[-1][1]:
            self.lines.append((self.depth, ""))
        self.current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag == "blockquote":
            self.flush(paragraph=True)
            self.depth += 1
        elif tag in self.BLOCKS:
            self.flush(paragraph=tag in self.PARAGRAPHS)
            if tag == "li":
                self.current.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag == "blockquote":
            self.flush(paragraph=True)
            self.depth = max(0, self.depth - 1)
        elif tag in self.BLOCKS:
            self.flush(paragraph=tag in self.PARAGRAPHS)

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.current.append(data)

    def text(self) -> str:
        self.flush()
        return "\n".join(("> " * depth + line) if line else "" for depth, line in self.lines).strip()


TAG = re.compile(r"<[^>]*>")


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError, IndexError):  # html.parser on very broken markup
        return " ".join(TAG.sub(" ", html).split())
    return parser.text()


# --------------------------------------------------------------------------------------------
# The reply without the quoted message and the signature
# --------------------------------------------------------------------------------------------
ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(original message|ursprüngliche nachricht|originalnachricht|forwarded message|"
    r"weitergeleitete nachricht)\s*-{2,}\s*$",
    re.IGNORECASE,
)
HEADER_LINE = re.compile(r"^\s*\*?(from|von|sent|gesendet|date|datum|to|an|cc|subject|betreff)\s*:\*?\s", re.IGNORECASE)
FROM_LINE = re.compile(r"^\s*\*?(from|von)\s*:\*?\s", re.IGNORECASE)
# "On Tue, 1 Dec 2026 at 10:00, Stadt <x@y> wrote:" (may wrap over up to three lines)
ENGLISH_ATTRIBUTION = re.compile(r"^\s*on\s.{0,400}\bwrote\s*:\s*$", re.IGNORECASE)
# the German form, as Thunderbird and Gmail write it: Am (date) um (time) schrieb (sender):
GERMAN_ATTRIBUTION = re.compile(r"^\s*am\s.{0,400}\bschrieb\b.{0,300}:\s*$", re.IGNORECASE)
# "Erika <e@x> schrieb am 01.12.2026:" / "Stadt wrote:" — only when quoted lines follow
LOOSE_ATTRIBUTION = re.compile(r"^.{0,300}\b(wrote|schrieb)\b.{0,200}:\s*$", re.IGNORECASE)
MOBILE_SIGNATURE = re.compile(
    r"^\s*(sent from my|sent from|gesendet von meinem|von meinem .{1,40} gesendet|gesendet mit)\b.{0,80}$",
    re.IGNORECASE,
)
SEPARATOR = re.compile(r"^\s*[_=-]{8,}\s*$")


def _header_block(lines: list[str], i: int) -> bool:
    """Outlook's quoted header block: "Von: …" followed by at least two more header lines."""
    if not FROM_LINE.match(lines[i]):
        return False
    following = [line for line in lines[i + 1 : i + 6] if line.strip()][:4]
    return sum(1 for line in following if HEADER_LINE.match(line)) >= 2


def _attribution(lines: list[str], i: int) -> int:
    """How many lines (1–3, none of them blank) the attribution line starting at i spans, 0 if
    none. The loose form ("Erika schrieb:") counts only on one line followed by quoted lines."""
    if LOOSE_ATTRIBUTION.match(lines[i].strip()) and _quote_follows(lines, i + 1):
        return 1
    for span in (1, 2, 3):
        if i + span > len(lines) or not lines[i + span - 1].strip():
            break
        joined = " ".join(line.strip() for line in lines[i : i + span])
        if ENGLISH_ATTRIBUTION.match(joined) or GERMAN_ATTRIBUTION.match(joined):
            return span
    return 0


def _quote_follows(lines: list[str], start: int) -> bool:
    for line in lines[start : start + 3]:
        if line.strip():
            return line.lstrip().startswith(">")
    return False


def strip_reply(text: str) -> str:
    """The new part of a reply: everything from an "Original Message" line, an Outlook header
    block or a signature delimiter ("-- ") on is cut, quoted lines ("> …") and attribution
    lines ("On … wrote:", "Am … schrieb …:") are dropped, and a trailing "Sent from my phone"."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = len(lines)
    for i, line in enumerate(lines):
        if ORIGINAL_MESSAGE.match(line) or line in ("-- ", "--") or _header_block(lines, i):
            cut = i
            break
    lines = lines[:cut]
    kept: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith(">"):
            i += 1
            continue
        span = _attribution(lines, i)
        if span:
            i += span
            continue
        kept.append(lines[i].rstrip())
        i += 1
    while kept and (not kept[-1].strip() or SEPARATOR.match(kept[-1])):
        kept.pop()
    if kept and MOBILE_SIGNATURE.match(kept[-1]):
        kept.pop()
    result = "\n".join(kept).strip()
    return re.sub(r"\n{3,}", "\n\n", result)


# --------------------------------------------------------------------------------------------
# The whole message
# --------------------------------------------------------------------------------------------
def parse_message(raw: bytes, *, limits: Limits | None = None, now: datetime | None = None) -> InboundMessage | None:
    """The InboundMessage in a raw RFC 822 message; None for automatic mail. Raises
    WebhookParseError when there is no sender address to answer."""
    limits = limits or Limits()
    now = now or datetime.now(UTC)
    if not raw.strip():
        raise WebhookParseError("empty message")
    try:
        message = BytesParser(policy=compat32).parsebytes(raw)
    except (ValueError, LookupError, IndexError, TypeError) as exc:
        raise WebhookParseError(f"not an e-mail message ({type(exc).__name__})") from None
    name, address = parseaddr(_raw_header(message, "From"))
    address = address.strip().lower()
    if not ADDRESS.fullmatch(address):
        raise WebhookParseError("no sender address in From")
    subject = _header(message, "Subject")
    if is_automatic(message, address, subject):
        return None
    message_id = next(iter(message_ids(_raw_header(message, "Message-ID"))), "")
    if not message_id or len(message_id) > 200:
        message_id = f"<{hashlib.sha256(raw).hexdigest()[:40]}@no-message-id.invalid>"
    in_reply_to = message_ids(_raw_header(message, "In-Reply-To"))[:MAX_REFERENCES]
    references = message_ids(" ".join(_all(message, "References")))[-MAX_REFERENCES:]
    try:
        body = _read_body(message, limits)
    except (ValueError, LookupError, IndexError, TypeError) as exc:  # e.g. a NUL in a part's charset
        raise WebhookParseError(f"unreadable message body ({type(exc).__name__})") from None
    full = body.plain if body.plain is not None else html_to_text(body.html or "")
    full = CONTROL.sub("", full.replace("\r\n", "\n").replace("\r", "\n")).strip()
    text = strip_reply(full)
    quote_only = bool(full) and not text
    if not text and not full:
        text = REPLY_PREFIX.sub("", subject).strip()
    elif quote_only:
        text = full
    truncated = body.truncated or len(text) > limits.text_chars
    attachments = body.attachments or []
    kind: InboundKind = "document" if not text and attachments else "text"
    decoded_name = " ".join(_all_decoded(name).split())[:200]
    return InboundMessage(
        provider_message_id=message_id,
        sender=address,
        sender_name=decoded_name,
        at=_sent_at(message, now),
        kind=kind,
        text=text[: limits.text_chars],
        reply_to_provider_id=(in_reply_to or references[-1:] or [""])[0],
        payload={
            "subject": subject[:500],
            "to": _addresses(message, "To"),
            "cc": _addresses(message, "Cc"),
            "delivered_to": _addresses(message, "Delivered-To", "X-Original-To"),
            "in_reply_to": in_reply_to,
            "references": references,
            "attachments": attachments,
            "html_only": body.plain is None and body.html is not None,
            "quote_only": quote_only,
            "truncated": truncated,
        },
    )


def _all_decoded(value: str) -> str:
    try:
        parts = decode_header(value)
    except (ValueError, LookupError, IndexError):
        return CONTROL.sub("", value)
    return CONTROL.sub("", "".join(_decode_bytes(p, c) if isinstance(p, bytes) else p for p, c in parts))
