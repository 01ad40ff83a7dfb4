"""What a German page shows, and which of it is still English.

`visible_text(html)` is the text a person sees or hears on a page: text nodes (not scripts,
styles or code samples), <option> labels, and the title, aria-label, placeholder and alt
attributes. `english_lines(lines)` returns the lines that are not German, found three ways:

- a line that *is* a msgid of a loaded catalogue (ours, Django's, allauth's) whose German text
  differs: the string went around the catalogue (say, a label built before the language was set);
- a line with a word from ENGLISH_WORDS, UI words that are never German (labels Django builds
  from field names, such as "Provider message id", are in no catalogue);
- a raw code: `broadcast.created`, `not_sent`;
- the informal "Du" (German pages address staff and citizens alike as "Sie").

Test data must be German or neutral (names such as "Stadt A"), or a line would be flagged for
the data it shows; `ALLOWED` lists the few neutral values that look like English.
"""

from __future__ import annotations

import re
from functools import cache
from html.parser import HTMLParser

from django.utils import translation

SKIPPED_TAGS = {"script", "style", "code", "pre", "textarea", "template", "noscript"}
SHOWN_ATTRIBUTES = ("title", "aria-label", "placeholder", "alt")

# UI words that are English and never German (words both languages share, such as "Name",
# "Status", "Test", "Link", "Team", "Import", "Export", "Token", "Sandbox", are left out, and
# so are English words that are also German ones: "die", "was", "will", "also", "an", "war").
ENGLISH_WORDS = frozenset(
    [
        "the",
        "and",
        "or",
        "of",
        "with",
        "without",
        "for",
        "from",
        "to",
        "by",
        "at",
        "into",
        "your",
        "you",
        "this",
        "that",
        "these",
        "those",
        "which",
        "when",
        "is",
        "are",
        "be",
        "been",
        "has",
        "have",
        "had",
        "not",
        "only",
        "any",
        "all",
        "none",
        "yes",
        "add",
        "change",
        "changes",
        "delete",
        "save",
        "search",
        "history",
        "view",
        "edit",
        "select",
        "action",
        "actions",
        "show",
        "hide",
        "please",
        "wrote",
        "hours",
        "hour",
        "days",
        "day",
        "week",
        "weeks",
        "month",
        "last",
        "first",
        "next",
        "previous",
        "new",
        "open",
        "close",
        "closed",
        "ids",
        "total",
        "kind",
        "error",
        "errors",
        "message",
        "messages",
        "connection",
        "connections",
        "recipient",
        "recipients",
        "provider",
        "providers",
        "schema",
        "created",
        "updated",
        "sent",
        "pending",
        "failed",
        "delivered",
        "read",
        "draft",
        "drafts",
        "approved",
        "rejected",
        "scheduled",
        "cancelled",
        "canceled",
        "paused",
        "running",
        "finished",
        "queued",
        "skipped",
        "subscriber",
        "subscribers",
        "subscription",
        "subscriptions",
        "channel",
        "channels",
        "broadcast",
        "broadcasts",
        "template",
        "templates",
        "phone",
        "phones",
        "user",
        "users",
        "language",
        "languages",
        "date",
        "time",
        "count",
        "people",
        "reason",
        "author",
        "approver",
        "editor",
        "agent",
        "inbox",
        "number",
        "address",
        "body",
        "title",
        "settings",
        "setting",
        "welcome",
        "reply",
        "replies",
        "keyword",
        "keywords",
        "district",
        "districts",
        "source",
        "state",
        "received",
        "outgoing",
        "incoming",
        "inbound",
        "outbound",
        "contact",
        "contacts",
        "event",
        "events",
        "attempt",
        "attempts",
        "retry",
        "retries",
        "variant",
        "variants",
        "revision",
        "revisions",
        "consent",
        "confirmed",
        "unsubscribed",
        "subscribed",
        "log",
        "entry",
        "entries",
        "tenant",
        "tenants",
        "domain",
        "domains",
        "onboarding",
        "step",
        "steps",
        "job",
        "jobs",
        "poster",
        "posters",
        "override",
        "overrides",
        "texts",
        "click",
        "clicks",
        "delivery",
        "deliveries",
        "tracked",
        "enabled",
        "disabled",
        "allowed",
        "required",
        "optional",
        "sign",
        "login",
        "logout",
        "password",
        "forgot",
        "remember",
        "approval",
        "approve",
        "requested",
        "request",
        "waiting",
        "wait",
        "reject",
        "submit",
        "submitted",
        "aliases",
        "sending",
    ]
)
# Labels made from a code by capitalising it (choices without a label): "Whatsapp", "Sms".
# Python values printed as they are ("None") count too. (Not "True"/"False": Django's own
# yes/no icons carry them as alt text; the admin skin replaces those icons.)
CODE_LABELS = frozenset({"Whatsapp", "Sms", "Email", "Inbox agent", "Not sent", "None"})
INFORMAL_WORDS = frozenset(["du", "dich", "dir", "dein", "deine", "deinen", "deinem", "deiner", "deines"])

# Neutral values the walk's data shows (product and provider names are the same in German),
# and words German shares with English that a catalogue happens to translate differently.
ALLOWED = frozenset(
    [
        "WhatsApp",
        "Telegram",
        "SMS",
        "E-Mail",
        "Sandbox",
        "Twilio",
        "Meta",
        "Messenger-Newsletter",
        "English",
        "Deutsch",
        "ID",
        "Messenger",
        "Status",
        "Name",
        "Text",
        "Position",
        "Import",
        "Export",
        "Code",
        "Logo",
        "Details",
        "Widget",
        "Person",
        "Filter",
        "Link",
        "Deep-Link",
        "Optional",
        "optional",
        "Token",
        "Webhook",
        "Team",
        "Test",
        "Tags",
        "Version",
        "Region",
        "Info",
        "Domain",
        "Domains",
    ]
)
# A lowercase "id" is English ("Provider message id"); "ID" is German too.
CASE_SENSITIVE_WORDS = frozenset({"id"})

# Quoted names („channels“), placeholders ({channel}, <Thema>), words cut short by a preview
# ("all…") and technical keys (status:sbx-1f2e:sent) are literal values, not UI text.
_LITERAL = re.compile(r"\w+…|„[^“]*“|\{[^}]*\}?|<[^>]*>|\S+:\S+")
_URL_OR_ADDRESS = re.compile(r"\S+@\S+|\b\w+://\S+|(?:^|\s)/\S*|\b[\w.-]+\.(?:localhost|example|org|de|com)\b\S*")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?", re.UNICODE)
_HAS_DIGIT = re.compile(r"\d")


def _words(text: str) -> list[str]:
    """The words of `text`; a token with a digit in it (an id such as sbx-dd914be2) has none."""
    return [word for token in text.split() if not _HAS_DIGIT.search(token) for word in _WORD.findall(token)]


_RAW_CODE = re.compile(r"^[a-z][a-z0-9]*(?:[._][a-z0-9]+)+$")


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._skipping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED_TAGS:
            self._skipping.append(tag)
        if self._skipping:
            return
        values = dict(attrs)  # hidden parts are read too: they show after a click (tabs, details)
        for name in SHOWN_ATTRIBUTES:
            if values.get(name):
                self._add(values[name] or "")
        if tag == "input" and values.get("type") in {"submit", "button"} and values.get("value"):
            self._add(values["value"] or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in SKIPPED_TAGS:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self._skipping and self._skipping[-1] == tag:
            self._skipping.pop()

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._add(data)

    def _add(self, text: str) -> None:
        line = " ".join(text.split())
        if line:
            self.lines.append(line)


def visible_text(html: str) -> list[str]:
    """The page's text, one entry per text node or shown attribute, whitespace collapsed."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    return collector.lines


@cache
def translated_msgids() -> frozenset[str]:
    """Every msgid the German catalogues translate into something else (compared without case),
    leaving out those that are some other msgid's German text ("Status", "Messenger")."""
    with translation.override("de"):
        catalog = translation.trans_real.translation("de")._catalog  # type: ignore[attr-defined]
        ids, german = set(), set()
        for key, value in catalog.items():
            msgid = key[0] if isinstance(key, tuple) else key
            if not isinstance(msgid, str) or not isinstance(value, str) or not msgid:
                continue
            german.add(value.strip().rstrip(":").casefold())
            if value == msgid or len(msgid) < 4 or not any(ch.isalpha() for ch in msgid):
                continue
            ids.add(msgid.strip().rstrip(":").casefold())
    return frozenset(ids - german)


def why_english(line: str, *, allowed: frozenset[str] = frozenset()) -> str | None:
    """Why `line` is not German, or None when it is (or carries no words)."""
    if line in ALLOWED or line in allowed or line.lower() in allowed:
        return None
    if line[:1] in "{[" and line[-1:] in "}]":
        return None  # stored JSON (a webhook's payload, an audit event's details) is data
    if _RAW_CODE.match(line):
        return "raw code"
    if line in CODE_LABELS:
        return "code shown as a label"
    bare = line.strip().rstrip(":").casefold()
    if bare in translated_msgids() and line.rstrip(":") not in ALLOWED:
        return "msgid shown untranslated"
    words = _words(_URL_OR_ADDRESS.sub(" ", _LITERAL.sub(" ", line)))
    if any(not word.isupper() for word in words):
        # in a sentence, capitals are a command to send ("senden Sie STOP oder DELETE MY DATA")
        words = [word for word in words if not word.isupper()]
    for word in words:
        if word in ALLOWED or word in allowed:
            continue
        folded = word.casefold()
        if folded in INFORMAL_WORDS:
            return f"informal '{word}'"
        if folded in ENGLISH_WORDS or word in CASE_SENSITIVE_WORDS:
            return f"English word '{word}'"
    return None


def english_lines(lines: list[str], *, allowed: frozenset[str] = frozenset()) -> list[str]:
    """The lines that are not German, each with the reason, duplicates dropped."""
    found: dict[str, str] = {}
    for line in lines:
        reason = why_english(line, allowed=allowed)
        if reason and line not in found:
            found[line] = reason
    return [f"{line!r}  ({reason})" for line, reason in found.items()]
