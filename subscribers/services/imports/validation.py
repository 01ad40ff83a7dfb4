"""Validating rows: each data row becomes a Record to import or a list of RowErrors (the whole
row is rejected). Channels, districts and languages are resolved against Lookups, loaded once per
import; no database access per row."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone

from channels.keywords import match_key
from channels.models import Channel
from messengers.models import Connection
from subscribers import selectors
from subscribers.addresses import phone_to_e164, region_for_timezone
from subscribers.models import District, Language
from subscribers.services.imports.reading import ADDRESS_COLUMNS

LANGUAGE_WORDS = {
    "DE": Language.DE, "DEUTSCH": Language.DE, "GERMAN": Language.DE,
    "EN": Language.EN, "ENGLISCH": Language.EN, "ENGLISH": Language.EN,
    "DE LS": Language.EASY, "DELS": Language.EASY, "LEICHTE SPRACHE": Language.EASY, "EASY": Language.EASY,
}  # fmt: skip
TELEGRAM_ID = re.compile(r"^-?\d{1,20}$")
LIST_SPLIT = re.compile(r"[,;|\n]+")
DATE_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y", "%d.%m.%y", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d")
# Plain ASCII addresses (name.part+tag@sub.example.org): a strict subset of what Django's
# validate_email accepts, checked without it (a third of a large file's rows has one); everything
# else (quoted parts, IDN, IP literals, invalid ones) goes through validate_email.
_PLAIN_EMAIL = re.compile(
    r"[a-zA-Z0-9_+-]+(?:\.[a-zA-Z0-9_+-]+)*"
    r"@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*"
    r"\.[a-zA-Z]{2,63}"
)
PROVIDER_NAMES = {"whatsapp": "WhatsApp", "sms": "SMS", "telegram": "Telegram", "email": "e-mail", "sandbox": "sandbox"}


def _word_key(word: str) -> str:
    return match_key(word.replace("-", " ")).replace(" ", "")


@dataclass
class Lookups:
    """What rows are resolved against (loaded once per import). Words people wrote are looked
    up once each (a 100,000-row file repeats the same few channel and district names)."""

    connections: dict[str, int]
    channels: dict[str, int]
    districts: dict[str, int]
    default_language: str
    zone: zoneinfo.ZoneInfo
    region: str
    now: datetime
    _memo: dict[tuple[str, str], Any] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Lookups:
        connections: dict[str, int] = {}
        for provider, pk in (
            Connection.objects.exclude(status=Connection.Status.DISABLED).order_by("pk").values_list("provider", "pk")
        ):
            connections.setdefault(provider, pk)
        channels: dict[str, int] = {}
        for channel in Channel.objects.order_by("-is_active", "pk"):
            for word in [channel.slug, channel.name, *channel.keywords]:
                channels.setdefault(_word_key(word), channel.pk)
        districts: dict[str, int] = {}
        for district in District.objects.order_by("pk"):
            for word in [district.name, district.slug, *district.aliases]:
                districts.setdefault(_word_key(word), district.pk)
        tenant = selectors.current_tenant()
        zone_name = getattr(tenant, "timezone", "") or "Europe/Berlin"
        try:
            zone = zoneinfo.ZoneInfo(zone_name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = zoneinfo.ZoneInfo("Europe/Berlin")
        language = getattr(tenant, "default_language", "") or Language.DE
        return cls(connections, channels, districts, language, zone, region_for_timezone(zone_name), timezone.now())

    def _lookup(self, kind: str, word: str, table: dict[str, Any]) -> Any:
        memo_key = (kind, word)
        if memo_key not in self._memo:
            self._memo[memo_key] = table.get(_word_key(word))
        return self._memo[memo_key]

    def channel(self, word: str) -> int | None:
        return self._lookup("channel", word, self.channels)

    def channel_list(self, text: str) -> tuple[list[int], list[str]]:
        """The channels a cell names ("feinstaub, verkehr") and the words that name none."""
        if not text:
            return [], []
        memo_key = ("channels", text)
        if memo_key not in self._memo:
            found: list[int] = []
            unknown: list[str] = []
            for word in LIST_SPLIT.split(text):
                word = word.strip()
                if not word:
                    continue
                pk = self.channel(word)
                if pk is None:
                    unknown.append(word)
                elif pk not in found:
                    found.append(pk)
            self._memo[memo_key] = (found, unknown)
        return self._memo[memo_key]

    def district(self, word: str) -> int | None:
        return self._lookup("district", word, self.districts)

    def language(self, word: str) -> str | None:
        return self._lookup("language", word, LANGUAGE_KEYS)

    def consent_at(self, value: Any) -> datetime | None:
        if isinstance(value, datetime | date):
            return _consent_at(value, self)
        memo_key = ("date", value)
        if memo_key not in self._memo:
            self._memo[memo_key] = _consent_at(value, self)
        return self._memo[memo_key]


LANGUAGE_KEYS = {_word_key(word): language for word, language in LANGUAGE_WORDS.items()}


@dataclass
class Record:
    row: int
    name: str
    addresses: list[tuple[int, str]]
    channel_ids: list[int]
    district_id: int | None
    language: str | None
    tags: list[str]
    consent_source: str
    consent_at: datetime
    external_ref: str


@dataclass
class RowError:
    row: int
    column: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "message": self.message}


def _address(column: str, value: str, region: str) -> str | None:
    if column in ("whatsapp", "sms", "sandbox"):
        return phone_to_e164(value, region)
    if column == "telegram":
        compact = value.strip()
        return compact if TELEGRAM_ID.match(compact) else None
    email = value.strip()
    if _PLAIN_EMAIL.fullmatch(email) is None:
        try:
            validate_email(email)
        except ValidationError:
            return None
    return email.lower() if len(email) <= 254 else None


def normalise_address(provider: str, value: str, region: str) -> str | None:
    """An address as the import stores it for `provider` (E.164 phones, lower-case e-mail,
    numeric Telegram ids), or None if it is not valid (the API's subscriber create uses it)."""
    return _address(provider, value, region)


def _consent_at(value: Any, lookups: Lookups) -> datetime | None:
    parsed: datetime | None = None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time())
    else:
        text = str(value).strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            for pattern in DATE_FORMATS:
                try:
                    parsed = datetime.strptime(text, pattern)  # noqa: DTZ007 - made aware just below
                    break
                except ValueError:
                    continue
    if parsed is None:
        return None
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=lookups.zone)
    return parsed


def _shown(value: Any) -> str:
    """A value as quoted in a row error: short, so 5,000 errors stay small whatever the cells hold."""
    text = str(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _text(value: Any) -> str:
    # cells are stripped strings already (read_rows); spreadsheets may also give dates or numbers
    return value if value.__class__ is str else str(value).strip()


def _consent_at_checked(
    number: int, values: dict[str, Any], lookups: Lookups, errors: list[RowError]
) -> datetime | None:
    raw_date = values.get("consent_date", "")
    if raw_date in ("", None):
        errors.append(RowError(number, "consent_date", "The consent date is missing."))
        return None
    consent_at = lookups.consent_at(raw_date)
    if consent_at is None:
        errors.append(
            RowError(number, "consent_date", f"“{_shown(raw_date)}” is not a date (use 2024-03-31 or 31.03.2024).")
        )
    elif consent_at > lookups.now:
        errors.append(RowError(number, "consent_date", "The consent date lies in the future."))
    return consent_at


def _addresses(number: int, values: dict[str, Any], lookups: Lookups, errors: list[RowError]) -> list[tuple[int, str]]:
    """(connection id, address) for each address column filled in."""
    addresses: list[tuple[int, str]] = []
    for column in ADDRESS_COLUMNS:
        raw = _text(values.get(column, ""))
        if not raw:
            continue
        address = _address(column, raw, lookups.region)
        if address is None:
            errors.append(RowError(number, column, f"“{_shown(raw)}” is not a valid {PROVIDER_NAMES[column]} address."))
            continue
        connection_id = lookups.connections.get(column)
        if connection_id is None:
            errors.append(RowError(number, column, f"There is no {PROVIDER_NAMES[column]} connection to import into."))
            continue
        addresses.append((connection_id, address))
    if not addresses and not any(e.column in ADDRESS_COLUMNS for e in errors):
        errors.append(RowError(number, "address", "The row has no address (WhatsApp, SMS, Telegram or e-mail)."))
    return addresses


def _channels(
    number: int, values: dict[str, Any], lookups: Lookups, default_channels: list[int], errors: list[RowError]
) -> list[int]:
    found, unknown = lookups.channel_list(_text(values.get("channels", "")))
    if default_channels:
        channel_ids = list(default_channels)
        channel_ids += [pk for pk in found if pk not in channel_ids]
    else:
        channel_ids = list(found)  # a copy: `found` is memoised
    if unknown:
        errors.extend(RowError(number, "channels", f"There is no channel “{_shown(word)}”.") for word in unknown)
    if not channel_ids and not unknown:
        errors.append(RowError(number, "channels", "No channel: fill the channels column or choose default channels."))
    return channel_ids


def _district_and_language(
    number: int, values: dict[str, Any], lookups: Lookups, errors: list[RowError]
) -> tuple[int | None, str | None]:
    district_id: int | None = None
    raw_district = _text(values.get("district", ""))
    if raw_district:
        district_id = lookups.district(raw_district)
        if district_id is None:
            errors.append(RowError(number, "district", f"There is no district “{_shown(raw_district)}”."))
    language: str | None = None
    raw_language = _text(values.get("language", ""))
    if raw_language:
        language = lookups.language(raw_language)
        if language is None:
            errors.append(
                RowError(number, "language", f"Unknown language “{_shown(raw_language)}” (use de, en or de-ls).")
            )
    return district_id, language


def validate_row(
    number: int, cells: Sequence[Any], columns: dict[str, int], lookups: Lookups, default_channels: list[int]
) -> tuple[Record | None, list[RowError]]:
    """A row as a Record to import, or None and every problem it has (errors in column order)."""
    width = len(cells)
    values = {name: cells[index] for name, index in columns.items() if index < width}
    errors: list[RowError] = []
    source = _text(values.get("consent_source", ""))
    if not source:
        errors.append(RowError(number, "consent_source", "The consent source is missing (how did the person agree?)."))
    consent_at = _consent_at_checked(number, values, lookups, errors)
    addresses = _addresses(number, values, lookups, errors)
    channel_ids = _channels(number, values, lookups, default_channels, errors)
    district_id, language = _district_and_language(number, values, lookups, errors)
    raw_tags = _text(values.get("tags", ""))
    tags = list(dict.fromkeys(t.strip()[:40] for t in LIST_SPLIT.split(raw_tags) if t.strip())) if raw_tags else []
    if errors or consent_at is None:
        return None, errors
    record = Record(
        row=number, name=_text(values.get("name", ""))[:200], addresses=list(dict.fromkeys(addresses)),
        channel_ids=channel_ids, district_id=district_id, language=language, tags=tags, consent_source=source[:120],
        consent_at=consent_at, external_ref=_text(values.get("external_ref", ""))[:120],
    )  # fmt: skip
    return record, []
