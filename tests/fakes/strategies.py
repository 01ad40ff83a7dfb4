"""Hypothesis strategies for fuzzing webhook parsers: arbitrary JSON, and provider-shaped payloads
whose every field may be replaced by arbitrary JSON (so the parsers' deeper branches are reached
with wrong types, not only the top-level checks)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from hypothesis import strategies as st

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually the right shape, sometimes any JSON value."""
    return st.one_of(strategy, strategy, strategy, json_values)


timestamps = st.one_of(
    st.integers(min_value=0, max_value=4_000_000_000).map(str),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.text(max_size=12),
)
ids = st.text(min_size=0, max_size=30)

# ---------------------------------------------------------------- WhatsApp
WA_TYPES = [
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
    "button",
    "interactive",
    "unsupported",
    "order",
]
wa_error = st.fixed_dictionaries({"code": maybe(st.integers(0, 200_000)), "title": maybe(st.text(max_size=20))})
wa_status = st.fixed_dictionaries(
    {
        "id": maybe(ids),
        "status": maybe(st.sampled_from(["sent", "delivered", "read", "failed", "played", "deleted"])),
        "timestamp": maybe(timestamps),
    },
    optional={
        "recipient_id": maybe(ids),
        "biz_opaque_callback_data": maybe(ids),
        "errors": maybe(st.lists(maybe(wa_error), max_size=2)),
    },
)
wa_reply = st.fixed_dictionaries({"id": maybe(ids), "title": maybe(ids)}, optional={"description": maybe(ids)})
wa_interactive = st.fixed_dictionaries(
    {"type": maybe(st.sampled_from(["button_reply", "list_reply", "nfm_reply"]))},
    optional={"button_reply": maybe(wa_reply), "list_reply": maybe(wa_reply)},
)
wa_message = st.fixed_dictionaries(
    {"id": maybe(ids), "from": maybe(ids), "timestamp": maybe(timestamps), "type": maybe(st.sampled_from(WA_TYPES))},
    optional={
        "text": maybe(st.fixed_dictionaries({"body": maybe(st.text(max_size=30))})),
        "image": maybe(st.fixed_dictionaries({"id": maybe(ids)}, optional={"caption": maybe(ids)})),
        "location": maybe(st.fixed_dictionaries({"latitude": json_leaves, "longitude": json_leaves})),
        "contacts": maybe(st.lists(maybe(st.fixed_dictionaries({"name": maybe(json_values)})), max_size=2)),
        "reaction": maybe(st.fixed_dictionaries({"message_id": maybe(ids), "emoji": maybe(ids)})),
        "button": maybe(st.fixed_dictionaries({"payload": maybe(ids), "text": maybe(ids)})),
        "interactive": maybe(wa_interactive),
        "context": maybe(st.fixed_dictionaries({"id": maybe(ids)})),
    },
)
wa_value = st.fixed_dictionaries(
    {},
    optional={
        "metadata": maybe(st.fixed_dictionaries({"phone_number_id": maybe(ids)})),
        "contacts": maybe(st.lists(maybe(st.fixed_dictionaries({"wa_id": maybe(ids), "profile": maybe(json_values)})))),
        "messages": maybe(st.lists(maybe(wa_message), max_size=3)),
        "statuses": maybe(st.lists(maybe(wa_status), max_size=3)),
    },
)
wa_change = st.fixed_dictionaries({"field": maybe(st.just("messages")), "value": maybe(wa_value)})
wa_envelopes = st.fixed_dictionaries(
    {
        "object": maybe(st.just("whatsapp_business_account")),
        "entry": maybe(
            st.lists(maybe(st.fixed_dictionaries({"id": maybe(ids), "changes": maybe(st.lists(maybe(wa_change)))})))
        ),
    }
)

# ---------------------------------------------------------------- Telegram
tg_user = st.fixed_dictionaries(
    {"id": maybe(st.integers(-(10**13), 10**13))},
    optional={"first_name": maybe(ids), "username": maybe(ids), "language_code": maybe(ids)},
)
tg_chat = st.fixed_dictionaries(
    {"id": maybe(st.integers(-(10**13), 10**13)), "type": maybe(st.sampled_from(["private", "group", "channel"]))}
)
tg_message = st.fixed_dictionaries(
    {"message_id": maybe(st.integers(0, 10**9)), "chat": maybe(tg_chat), "date": maybe(timestamps)},
    optional={
        "from": maybe(tg_user),
        "text": maybe(st.one_of(st.text(max_size=20), st.just("/start abc_1"), st.just("/start"))),
        "photo": maybe(st.lists(maybe(json_values), max_size=2)),
        "video": maybe(json_values),
        "voice": maybe(json_values),
        "location": maybe(json_values),
        "contact": maybe(json_values),
        "caption": maybe(ids),
        "reply_to_message": maybe(st.fixed_dictionaries({"message_id": maybe(st.integers())})),
    },
)
tg_member = st.fixed_dictionaries(
    {"chat": maybe(tg_chat), "date": maybe(timestamps)},
    optional={
        "from": maybe(tg_user),
        "old_chat_member": maybe(st.fixed_dictionaries({"status": maybe(st.sampled_from(["member", "kicked"]))})),
        "new_chat_member": maybe(st.fixed_dictionaries({"status": maybe(st.sampled_from(["member", "kicked"]))})),
    },
)
tg_callback = st.fixed_dictionaries(
    {"id": maybe(ids), "from": maybe(tg_user)},
    optional={"data": maybe(ids), "message": maybe(tg_message)},
)
tg_updates = st.fixed_dictionaries(
    {"update_id": maybe(st.integers(0, 10**12))},
    optional={
        "message": maybe(tg_message),
        "callback_query": maybe(tg_callback),
        "my_chat_member": maybe(tg_member),
        "edited_message": json_values,
        "poll": json_values,
    },
)

# ---------------------------------------------------------------- Twilio
TW_KEYS = [
    "MessageSid",
    "SmsSid",
    "MessageStatus",
    "SmsStatus",
    "ErrorCode",
    "From",
    "To",
    "Body",
    "NumMedia",
    "MediaUrl0",
    "MediaContentType0",
    "OptOutType",
    "ButtonPayload",
    "Latitude",
    "Longitude",
]
tw_forms = st.dictionaries(
    st.one_of(st.sampled_from(TW_KEYS), st.text(max_size=10)),
    st.one_of(
        st.sampled_from(["received", "sent", "delivered", "failed", "undelivered", "queued", "STOP", "1", ""]),
        st.text(max_size=20),
    ),
    max_size=8,
).map(lambda form: urlencode(form).encode())


# ---------------------------------------------------------------- E-mail (raw RFC 822 bytes)
MAIL_HEADERS = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Date",
    "Delivered-To",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Auto-Submitted",
    "MIME-Version",
]
MAIL_CHARSETS = ["utf-8", "iso-8859-1", "cp1252", "us-ascii", "utf-16", "rot13", "base64", "x-unknown", "", "\x00"]
MAIL_ENCODINGS = ["7bit", "8bit", "quoted-printable", "base64", "x-uuencode", "binary", "bogus"]
header_text = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    st.sampled_from(
        [
            "Erika <erika@example.org>",
            "=?utf-8?q?Erika_M=C3=BCller?= <e@x.de>",
            "=?bogus?b?!!!?= <e@x.de>",
            "<a@b>, <c@d>",
            '"unterminated <x@y>',
            "<fwd-1-0123456789abcdef01234567@stadt.example>",
            "Tue, 1 Dec 2026 10:00:00 +0100",
            "Mon, 99 Foo 99999 99:99:99 +9999",
            "auto-replied",
        ]
    ),
)


def _header_lines(pairs: list[tuple[str, str]]) -> bytes:
    return b"".join(
        f"{name}: {value}".encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b" ") + b"\r\n"
        for name, value in pairs
    )


def _part(content_type: str, charset: str, encoding: str, body: bytes, disposition: str) -> bytes:
    headers = [("Content-Type", f"{content_type}; charset={charset}" if charset else content_type)]
    headers.append(("Content-Transfer-Encoding", encoding))
    if disposition:
        headers.append(("Content-Disposition", disposition))
    return _header_lines(headers) + b"\r\n" + body


mail_parts = st.builds(
    _part,
    st.sampled_from(["text/plain", "text/html", "image/png", "message/rfc822", "application/pdf", "text/x-weird"]),
    st.sampled_from(MAIL_CHARSETS),
    st.sampled_from(MAIL_ENCODINGS),
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.just(b"<p>Hallo<blockquote>alt</blockquote>"),
        st.just(b"Danke\r\n\r\nAm 1.12. schrieb X:\r\n> alt\r\n-- \r\nSig"),
    ),
    st.sampled_from(
        ["", "inline", "attachment", 'attachment; filename="=?utf-8?q?a=C3=A4?="', "attachment; filename*=x"]
    ),
)


def _mail(headers: list[tuple[str, str]], parts: list[bytes], boundary: str, multipart: bool) -> bytes:
    if not multipart or not parts:
        return _header_lines(headers) + (parts[0] if parts else b"\r\n")
    head = _header_lines([*headers, ("Content-Type", f'multipart/mixed; boundary="{boundary}"')])
    sep = f"--{boundary}".encode("utf-8", "surrogatepass")
    return head + b"\r\n" + b"".join(sep + b"\r\n" + part + b"\r\n" for part in parts) + sep + b"--\r\n"


mail_messages = st.one_of(
    st.builds(
        _mail,
        st.lists(st.tuples(st.sampled_from(MAIL_HEADERS), header_text), max_size=10),
        st.lists(mail_parts, max_size=4),
        st.one_of(st.just("b1"), st.text(max_size=10)),
        st.booleans(),
    ),
    st.binary(max_size=400),
)
