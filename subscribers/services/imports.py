"""Import of subscribers from CSV/XLSX, and export of a channel's subscribers.

An import is stored (SubscriberImport, file included) and run by a worker in chunks of
CHUNK_ROWS rows, each chunk in its own transaction, so progress is visible while it runs and a
crash loses at most one chunk (running it again is safe). Per chunk it costs a constant number
of queries: look up known contacts and references, then bulk-create people, contacts,
subscriptions and their ledger entries.

Every row needs a consent source and date (the proof the organisation holds), at least one
address, and at least one channel (from its own column or the import's default channels). A
row with any problem is rejected as a whole and listed in the error report with its row
number; nothing is imported halfway. Re-importing the same file changes nothing: people are
recognised by their addresses (or the external reference), subscriptions are never
duplicated, and a subscription the person ended is never switched on again by an import.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import logging
import queue
import re
import secrets
import threading
import zoneinfo
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from time import monotonic
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_log
from channels.keywords import match_key
from channels.models import Channel
from core.errors import ApplicationError
from core.tasks import enqueue_tenant_task
from core.tenancy import connection as db
from messengers.models import Connection, Contact
from subscribers import selectors
from subscribers.addresses import phone_to_e164, region_for_timezone
from subscribers.models import (
    ConsentEvent,
    ConsentText,
    District,
    Language,
    Source,
    Subscriber,
    SubscriberImport,
    Subscription,
)

logger = logging.getLogger(__name__)

# 5,000 rows per transaction: ~20,000 inserted rows, one to two seconds each on a small machine
# (a progress update that often), few enough commits to keep 100,000 rows under 30 seconds.
CHUNK_ROWS = 5000
MAX_IMPORT_ERRORS = 5000
MAX_FILE_BYTES = 50 * 1024 * 1024
# Below the queue's task timeout (Q_CLUSTER["timeout"], 300 s): a longer import continues in a
# new task instead of being killed halfway.
TIME_BUDGET_SECONDS = 200
ANALYZE_AFTER_ROWS = 10_000

IMPORT_FILE_TOO_BIG = "The file is larger than 50 MB; please split it."
IMPORT_FILE_EMPTY = "The file is empty."
IMPORT_FORMAT_UNKNOWN = "Please upload a CSV file (.csv) or an Excel workbook (.xlsx)."
IMPORT_CHANNEL_UNKNOWN = "One of the chosen channels does not exist any more."
IMPORT_PARTY_NEEDS_EXPLICIT = (
    "Your organisation processes political opinions: confirm that every person in the file gave explicit "
    "consent (GDPR Art. 9(2)(a)) before importing."
)
IMPORT_MISSING_COLUMNS = "The header row lacks the required column(s): {columns}. Required: {required}."
IMPORT_NO_ADDRESS_COLUMN = "The header row has no address column; add at least one of: {columns}."
IMPORT_UNREADABLE = "The file could not be read as {format}: {detail}"

ADDRESS_COLUMNS = ("whatsapp", "sms", "telegram", "email", "sandbox")
REQUIRED_COLUMNS = ("consent_source", "consent_date")
# Header spellings we understand (compared by match key without spaces, so "E-Mail", "e_mail"
# and "EMAIL" are the same).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "full name", "vollstaendiger name"),
    "whatsapp": ("whatsapp", "whatsapp number", "whatsapp nummer"),
    "sms": ("sms", "sms number", "sms nummer", "mobile", "mobil", "handy"),
    "telegram": ("telegram", "telegram chat id", "telegram id"),
    "email": ("email", "e-mail", "e-mail-adresse", "email address", "mail"),
    "sandbox": ("sandbox",),
    "channels": ("channels", "channel", "kanaele", "kanal", "themen", "thema", "topics"),
    "district": ("district", "bezirk", "stadtbezirk"),
    "language": ("language", "sprache"),
    "tags": ("tags", "interests", "interessen"),
    "consent_source": ("consent_source", "consent source", "einwilligung quelle", "einwilligungsquelle", "quelle"),
    "consent_date": ("consent_date", "consent date", "einwilligung datum", "einwilligungsdatum", "datum"),
    "external_ref": ("external_ref", "external reference", "id", "referenz", "reference"),
}
_HEADER_KEYS = {
    match_key(alias).replace(" ", ""): column for column, aliases in COLUMN_ALIASES.items() for alias in aliases
}
LANGUAGE_WORDS = {
    "DE": Language.DE, "DEUTSCH": Language.DE, "GERMAN": Language.DE,
    "EN": Language.EN, "ENGLISCH": Language.EN, "ENGLISH": Language.EN,
    "DE LS": Language.EASY, "DELS": Language.EASY, "LEICHTE SPRACHE": Language.EASY, "EASY": Language.EASY,
}  # fmt: skip
TELEGRAM_ID = re.compile(r"^-?\d{1,20}$")
LIST_SPLIT = re.compile(r"[,;|\n]+")
DATE_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y", "%d.%m.%y", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d")
PROVIDER_NAMES = {"whatsapp": "WhatsApp", "sms": "SMS", "telegram": "Telegram", "email": "e-mail", "sandbox": "sandbox"}


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------
def detect_format(filename: str, data: bytes) -> str:
    name = filename.lower()
    if data[:4] == b"PK\x03\x04" or name.endswith(".xlsx"):
        return SubscriberImport.Format.XLSX
    if name.endswith((".csv", ".txt", ".tsv")) or b"\x00" not in data[:4096]:
        return SubscriberImport.Format.CSV
    raise ApplicationError(IMPORT_FORMAT_UNKNOWN)


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel keeps phone numbers as numbers
    return str(value).strip()


def read_rows(file_format: str, data: bytes) -> Iterator[tuple[int, list[Any]]]:
    """(spreadsheet row number, cells) for every row, the header included."""
    if file_format == SubscriberImport.Format.XLSX:
        from openpyxl import load_workbook

        try:
            workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds for a damaged file
            raise ApplicationError(IMPORT_UNREADABLE.format(format="XLSX", detail=exc.__class__.__name__)) from exc
        try:
            sheet = workbook.worksheets[0]
            for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
                yield number, [_cell(v) for v in row]
        finally:
            workbook.close()
        return
    text = _decode(data)
    sample = text[:8192]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        for number, row in enumerate(reader, start=1):
            yield number, [cell.strip() for cell in row]
    except csv.Error as exc:
        raise ApplicationError(IMPORT_UNREADABLE.format(format="CSV", detail=str(exc))) from exc


def map_header(cells: Sequence[Any]) -> tuple[dict[str, int], list[str]]:
    """Column name → index, and the headers we ignored."""
    columns: dict[str, int] = {}
    ignored: list[str] = []
    for index, cell in enumerate(cells):
        label = str(cell or "").strip()
        if not label:
            continue
        column = _HEADER_KEYS.get(match_key(label).replace(" ", ""))
        if column is None or column in columns:
            ignored.append(label)
        else:
            columns[column] = index
    return columns, ignored


def check_header(columns: dict[str, int]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ApplicationError(
            IMPORT_MISSING_COLUMNS.format(columns=", ".join(missing), required=", ".join(REQUIRED_COLUMNS))
        )
    if not any(c in columns for c in ADDRESS_COLUMNS):
        raise ApplicationError(IMPORT_NO_ADDRESS_COLUMN.format(columns=", ".join(ADDRESS_COLUMNS)))


# --------------------------------------------------------------------------------------------
# Validating rows
# --------------------------------------------------------------------------------------------
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
    try:
        validate_email(email)
    except ValidationError:
        return None
    return email.lower() if len(email) <= 254 else None


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


def _text(value: Any) -> str:
    # cells are stripped strings already (read_rows); spreadsheets may also give dates or numbers
    return value if value.__class__ is str else str(value).strip()


def validate_row(
    number: int, cells: Sequence[Any], columns: dict[str, int], lookups: Lookups, default_channels: list[int]
) -> tuple[Record | None, list[RowError]]:
    width = len(cells)
    values = {name: cells[index] for name, index in columns.items() if index < width}
    errors: list[RowError] = []
    source = _text(values.get("consent_source", ""))
    if not source:
        errors.append(RowError(number, "consent_source", "The consent source is missing (how did the person agree?)."))
    raw_date = values.get("consent_date", "")
    consent_at = lookups.consent_at(raw_date) if raw_date not in ("", None) else None
    if raw_date in ("", None):
        errors.append(RowError(number, "consent_date", "The consent date is missing."))
    elif consent_at is None:
        errors.append(RowError(number, "consent_date", f"“{raw_date}” is not a date (use 2024-03-31 or 31.03.2024)."))
    elif consent_at > lookups.now:
        errors.append(RowError(number, "consent_date", "The consent date lies in the future."))
    addresses: list[tuple[int, str]] = []
    for column in ADDRESS_COLUMNS:
        raw = _text(values.get(column, ""))
        if not raw:
            continue
        address = _address(column, raw, lookups.region)
        if address is None:
            errors.append(RowError(number, column, f"“{raw}” is not a valid {PROVIDER_NAMES[column]} address."))
            continue
        connection_id = lookups.connections.get(column)
        if connection_id is None:
            errors.append(RowError(number, column, f"There is no {PROVIDER_NAMES[column]} connection to import into."))
            continue
        addresses.append((connection_id, address))
    if not addresses and not any(e.column in ADDRESS_COLUMNS for e in errors):
        errors.append(RowError(number, "address", "The row has no address (WhatsApp, SMS, Telegram or e-mail)."))
    channel_ids = list(default_channels)
    found, unknown = lookups.channel_list(_text(values.get("channels", "")))
    channel_ids += [pk for pk in found if pk not in channel_ids]
    errors.extend(RowError(number, "channels", f"There is no channel “{word}”.") for word in unknown)
    if not channel_ids and not unknown:
        errors.append(RowError(number, "channels", "No channel: fill the channels column or choose default channels."))
    district_id: int | None = None
    raw_district = _text(values.get("district", ""))
    if raw_district:
        district_id = lookups.district(raw_district)
        if district_id is None:
            errors.append(RowError(number, "district", f"There is no district “{raw_district}”."))
    language: str | None = None
    raw_language = _text(values.get("language", ""))
    if raw_language:
        language = lookups.language(raw_language)
        if language is None:
            errors.append(RowError(number, "language", f"Unknown language “{raw_language}” (use de, en or de-ls)."))
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


# --------------------------------------------------------------------------------------------
# Writing a chunk
# --------------------------------------------------------------------------------------------
@dataclass
class ChunkResult:
    created: int = 0
    matched: int = 0
    subscriptions: int = 0
    errors: list[RowError] = field(default_factory=list)


NULL = "\\N"  # COPY text format
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")


def _esc(text: str) -> str:
    """Text for PostgreSQL's COPY text format (backslash, tab and line breaks escaped)."""
    if not _COPY_SPECIAL.search(text):
        return text
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _array(values: list[str]) -> str:
    if not values:
        return "{}"
    return _esc("{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}")


def _copy(table: str, columns: Sequence[str], lines: list[str]) -> None:
    """COPY pre-formatted lines (COPY text format) into a table of the current tenant schema
    (search_path). Many times faster than INSERT for thousands of rows, and formatting the
    lines here costs less than psycopg's per-value adaptation: together that keeps 100,000
    rows under 30 seconds."""
    if not lines:
        return
    with db.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        copy.write("".join(lines))


def _new_ids(table: str, count: int) -> list[int]:
    with db.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count])
        return [int(row[0]) for row in cursor.fetchall()]


def _import_chunk(records: list[Record], job: SubscriberImport, explicit: bool, lookups: Lookups) -> ChunkResult:
    """Write one chunk. Runs inside the chunk's transaction; what exists was looked up in it, so
    the COPYs only ever add rows that are new."""
    result = ChunkResult()
    by_connection: dict[int, set[str]] = defaultdict(set)
    for record in records:
        for connection_id, address in record.addresses:
            by_connection[connection_id].add(address)
    known_contacts: dict[tuple[int, str], tuple[int, int | None]] = {}
    with db.cursor() as cursor:
        for connection_id, addresses in by_connection.items():
            # one array parameter instead of thousands of IN placeholders (client-side binding)
            cursor.execute(
                "SELECT id, address, subscriber_id FROM messengers_contact "
                "WHERE connection_id = %s AND address = ANY(%s)",
                [connection_id, list(addresses)],
            )
            for pk, address, subscriber_id in cursor.fetchall():
                known_contacts[(connection_id, address)] = (pk, subscriber_id)
    refs = {r.external_ref for r in records if r.external_ref}
    known_refs: dict[str, int] = {}
    if refs:
        for ref, pk in (
            Subscriber.objects.filter(external_ref__in=refs, status=Subscriber.Status.ACTIVE)
            .order_by("pk")
            .values_list("external_ref", "pk")
        ):
            known_refs.setdefault(ref, pk)
    linked = {sid for _, sid in known_contacts.values() if sid is not None}
    erased = set(
        Subscriber.objects.filter(pk__in=linked, status=Subscriber.Status.ERASED).values_list("pk", flat=True)
    ) if linked else set()  # fmt: skip

    # who is who: ("old", pk) for people we know, ("new", index) for people of this chunk
    targets: list[tuple[str, int]] = []
    accepted: list[Record] = []
    new_people: list[Record] = []
    seen_keys: dict[tuple[Any, ...], tuple[str, int]] = {}
    for record in records:
        candidates: set[tuple[str, int]] = set()
        if record.external_ref:
            if record.external_ref in known_refs:
                candidates.add(("old", known_refs[record.external_ref]))
            if ("ref", record.external_ref) in seen_keys:
                candidates.add(seen_keys[("ref", record.external_ref)])
        for key in record.addresses:
            known = known_contacts.get(key)
            if known is not None and known[1] is not None and known[1] not in erased:
                candidates.add(("old", known[1]))
            if ("contact", *key) in seen_keys:
                candidates.add(seen_keys[("contact", *key)])
        if len(candidates) > 1:
            result.errors.append(
                RowError(record.row, "address", "These addresses belong to different people already; fix the row.")
            )
            continue
        if candidates:
            target = candidates.pop()
        else:
            target = ("new", len(new_people))
            new_people.append(record)
        if record.external_ref:
            seen_keys[("ref", record.external_ref)] = target
        for key in record.addresses:
            seen_keys[("contact", *key)] = target
        targets.append(target)
        accepted.append(record)

    now = timezone.now().isoformat()
    new_pks = _new_ids("subscribers_subscriber", len(new_people)) if new_people else []
    active = Subscriber.Status.ACTIVE.value
    # link secrets like subscribers.models.new_link_secret (12 random bytes, URL-safe), in one go
    randomness = base64.urlsafe_b64encode(secrets.token_bytes(12 * len(new_pks))).decode()
    link_secrets = [randomness[i * 16 : (i + 1) * 16] for i in range(len(new_pks))]
    _copy(
        "subscribers_subscriber",
        ["id", "created_at", "updated_at", "name", "language", "district_id", "tags", "status", "link_secret",
         "external_ref"],
        [
            f"{pk}\t{now}\t{now}\t{_esc(r.name)}\t{r.language or lookups.default_language}\t"
            f"{r.district_id if r.district_id is not None else NULL}\t{_array(r.tags)}\t{active}\t"
            f"{secret}\t{_esc(r.external_ref)}\n"
            for pk, r, secret in zip(new_pks, new_people, link_secrets, strict=True)
        ],
    )  # fmt: skip
    result.created = len(new_pks)

    def pk_of(target: tuple[str, int]) -> int:
        kind, value = target
        return new_pks[value] if kind == "new" else value

    # people we knew: fill in what is empty, add interests; never overwrite their own choices
    old_pks = {value for kind, value in targets if kind == "old"}
    result.matched = len(old_pks)
    if old_pks:
        old = {s.pk: s for s in Subscriber.objects.filter(pk__in=old_pks).only("pk", "name", "district", "tags")}
        changed: dict[int, Subscriber] = {}
        for record, target in zip(accepted, targets, strict=True):
            if target[0] != "old" or target[1] not in old:
                continue
            person = old[target[1]]
            if record.name and not person.name:
                person.name = record.name
                changed[person.pk] = person
            if record.district_id and person.district_id is None:
                person.district_id = record.district_id
                changed[person.pk] = person
            extra = [t for t in record.tags if t not in person.tags]
            if extra:
                person.tags = [*person.tags, *extra]
                changed[person.pk] = person
        if changed:
            Subscriber.objects.bulk_update(list(changed.values()), ["name", "district", "tags"], batch_size=CHUNK_ROWS)

    new_contacts: dict[tuple[int, str], str] = {}
    relink: list[Contact] = []
    for record, target in zip(accepted, targets, strict=True):
        subscriber_id = pk_of(target)
        for key in record.addresses:
            known = known_contacts.get(key)
            if known is None:
                if key not in new_contacts:
                    new_contacts[key] = (
                        f"{now}\t{now}\t{key[0]}\t{subscriber_id}\t{_esc(key[1])}\t{_esc(record.name)}\t"
                        f"{Contact.Status.ACTIVE.value}\t\n"
                    )
            elif known[1] is None or known[1] in erased:
                relink.append(Contact(pk=known[0], subscriber_id=subscriber_id))
    _copy(
        "messengers_contact",
        ["created_at", "updated_at", "connection_id", "subscriber_id", "address", "display_name", "status",
         "status_reason"],
        list(new_contacts.values()),
    )  # fmt: skip
    if relink:
        Contact.objects.bulk_update(relink, ["subscriber"], batch_size=CHUNK_ROWS)

    existing_pairs: set[tuple[int, int]] = set()
    if old_pks:  # people new in this chunk have no subscriptions yet
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT subscriber_id, channel_id FROM subscribers_subscription WHERE subscriber_id = ANY(%s)",
                [sorted(old_pks)],
            )
            existing_pairs = {(int(a), int(b)) for a, b in cursor.fetchall()}
    subscriptions: list[str] = []
    events: list[str] = []
    evidence_prefix = _esc(f"import #{job.pk} {job.filename[:120]} (sha256 {job.file_sha256[:12]}) row ")
    text_id = job.consent_text_id if job.consent_text_id is not None else NULL
    flag = "t" if explicit else "f"
    status, source, kind = Subscription.Status.ACTIVE.value, Source.IMPORT.value, ConsentEvent.Kind.OPT_IN.value
    for record, target in zip(accepted, targets, strict=True):
        subscriber_id = pk_of(target)
        at, detail = record.consent_at.isoformat(), _esc(record.consent_source)
        for channel_id in record.channel_ids:
            pair = (subscriber_id, channel_id)
            if pair in existing_pairs:
                continue
            existing_pairs.add(pair)
            subscriptions.append(f"{now}\t{now}\t{subscriber_id}\t{channel_id}\t{status}\t{source}\t{detail}\t{at}\n")
            # no connection: the consent was given elsewhere; the evidence names file and row
            events.append(
                f"{subscriber_id}\t{channel_id}\t{kind}\t{source}\t{detail}\t{at}\t{text_id}\t"
                f"{evidence_prefix}{record.row}\t{flag}\n"
            )
    _copy(
        "subscribers_subscription",
        ["created_at", "updated_at", "subscriber_id", "channel_id", "status", "source", "source_detail",
         "subscribed_at"],
        subscriptions,
    )  # fmt: skip
    _copy(
        "subscribers_consentevent",
        ["subscriber_id", "channel_id", "kind", "source", "source_detail", "at", "consent_text_id", "evidence",
         "explicit"],
        events,
    )  # fmt: skip
    result.subscriptions = len(subscriptions)
    return result


# --------------------------------------------------------------------------------------------
# The import as a whole
# --------------------------------------------------------------------------------------------
@transaction.atomic
def subscriber_import_create(
    *,
    filename: str,
    data: bytes,
    default_channels: Sequence[Channel] = (),
    consent_text: ConsentText | None = None,
    explicit_consent: bool = False,
    actor: User | None = None,
    request: HttpRequest | None = None,
) -> SubscriberImport:
    """Store an upload and queue its import. Header problems are reported right away."""
    if not data:
        raise ApplicationError(IMPORT_FILE_EMPTY)
    if len(data) > MAX_FILE_BYTES:
        raise ApplicationError(IMPORT_FILE_TOO_BIG)
    if selectors.is_party_tenant() and not explicit_consent:
        raise ApplicationError(IMPORT_PARTY_NEEDS_EXPLICIT)
    file_format = detect_format(filename, data)
    header: list[Any] = []
    for _, cells in read_rows(file_format, data):
        if any(str(c).strip() for c in cells):
            header = cells
            break
    if not header:
        raise ApplicationError(IMPORT_FILE_EMPTY)
    columns, _ = map_header(header)
    check_header(columns)
    channel_ids = [c.pk for c in default_channels]
    if Channel.objects.filter(pk__in=channel_ids).count() != len(set(channel_ids)):
        raise ApplicationError(IMPORT_CHANNEL_UNKNOWN)
    job = SubscriberImport.objects.create(
        created_by_label=(actor.get_username() if actor is not None else "system")[:200],
        filename=filename[:255], file_format=file_format, file_sha256=hashlib.sha256(data).hexdigest(), data=data,
        default_channel_ids=channel_ids, consent_text=consent_text, explicit_consent=explicit_consent,
    )  # fmt: skip
    audit_log(
        action="subscribers.import_started", actor=actor, target=job, request=request,
        details={"file": job.filename, "bytes": len(data), "channels": channel_ids},
    )  # fmt: skip
    enqueue_tenant_task("subscribers.tasks.subscriber_import_run_task", import_id=job.pk, task_name=None)
    return job


@transaction.atomic
def subscriber_import_resume(*, job: SubscriberImport, actor: User | None = None) -> bool:
    """Queue an import again whose task was lost (still waiting) or whose worker died (still
    "running" but not moving). Safe even if it is in fact still running: rows are never imported
    twice. Returns False for finished imports (their file is gone)."""
    job = SubscriberImport.objects.select_for_update().get(pk=job.pk)
    if job.status == SubscriberImport.Status.QUEUED:
        enqueue_tenant_task("subscribers.tasks.subscriber_import_run_task", import_id=job.pk)
    elif job.status == SubscriberImport.Status.RUNNING:
        enqueue_tenant_task("subscribers.tasks.subscriber_import_run_task", import_id=job.pk, resume=True)
    else:
        return False
    audit_log(action="subscribers.import_resumed", actor=actor, target=job)
    return True


def _save_progress(job: SubscriberImport, fields: list[str]) -> None:
    SubscriberImport.objects.filter(pk=job.pk).update(**{name: getattr(job, name) for name in fields})


@dataclass
class Batch:
    """Validated rows ready to be written, with what was rejected on the way."""

    records: list[Record]
    errors: list[RowError]
    rejected: int
    processed: int  # data rows read so far, this batch included
    last: bool = False  # nothing follows


def validated_batches(
    file_format: str, data: bytes, lookups: Lookups, default_channels: list[int], *, skip: int, header_notes: bool
) -> Iterator[Batch]:
    """Read and validate the file (pure: no database), CHUNK_ROWS good rows per batch, after
    skipping the first `skip` data rows (done before a hand-over or a crash)."""
    columns: dict[str, int] | None = None
    records: list[Record] = []
    errors: list[RowError] = []
    rejected = processed = 0
    for number, cells in read_rows(file_format, data):
        if not any(c not in ("", None) for c in cells):
            continue
        if columns is None:
            columns, ignored = map_header(cells)
            check_header(columns)
            if header_notes:
                errors.extend(RowError(number, label, "Unknown column, ignored.") for label in ignored)
            continue
        processed += 1
        if processed <= skip:
            continue
        record, row_errors = validate_row(number, cells, columns, lookups, default_channels)
        if record is None:
            errors.extend(row_errors)
            rejected += 1
        else:
            records.append(record)
        if len(records) >= CHUNK_ROWS:
            yield Batch(records, errors, rejected, processed)
            records, errors, rejected = [], [], 0
    if columns is None:
        raise ApplicationError(IMPORT_FILE_EMPTY)
    yield Batch(records, errors, rejected, processed, last=True)


class _ReadAhead:
    """Runs a (database-free) iterator in a thread, one batch ahead: the next chunk is parsed
    and validated while PostgreSQL writes the current one. Exceptions reach the consumer."""

    _DONE = object()

    def __init__(self, source: Iterator[Batch]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(source,), daemon=True, name="import-read-ahead")
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self, source: Iterator[Batch]) -> None:
        try:
            for batch in source:
                if not self._put(batch):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
            return
        self._put(self._DONE)

    def __iter__(self) -> Iterator[Batch]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def subscriber_import_run(*, import_id: int, resume: bool = False) -> SubscriberImport:
    """Worker: run a queued import chunk by chunk (each chunk commits on its own). A long import
    hands over to a fresh task before the queue's timeout (TIME_BUDGET_SECONDS) and carries on
    after the rows already done; `resume=True` also continues one whose worker died."""
    if resume:
        claimed = SubscriberImport.objects.filter(pk=import_id, status=SubscriberImport.Status.RUNNING).exists()
    else:
        claimed = bool(
            SubscriberImport.objects.filter(pk=import_id, status=SubscriberImport.Status.QUEUED).update(
                status=SubscriberImport.Status.RUNNING, started_at=timezone.now()
            )
        )
    job = SubscriberImport.objects.get(pk=import_id)
    if not claimed:
        return job  # finished, failed, or another worker has it
    started = monotonic()
    data = bytes(job.data)
    errors: list[RowError] = [RowError(e["row"], e["column"], e["message"]) for e in job.errors] if resume else []
    reader: _ReadAhead | None = None
    try:
        explicit = selectors.is_party_tenant() and job.explicit_consent
        lookups = Lookups.load()
        if not resume:
            job.total_rows = _count_rows(job.file_format, data)
            _save_progress(job, ["total_rows"])
        reader = _ReadAhead(
            validated_batches(
                job.file_format, data, lookups, list(job.default_channel_ids), skip=job.processed_rows if resume else 0,
                header_notes=not resume,
            )
        )  # fmt: skip
        processed = job.processed_rows if resume else 0
        for batch in reader:
            errors.extend(batch.errors)
            job.rows_rejected += batch.rejected
            processed = max(processed, batch.processed)
            _flush(job, batch.records, explicit, lookups, errors, processed)
            if not batch.last and monotonic() - started > TIME_BUDGET_SECONDS:
                enqueue_tenant_task("subscribers.tasks.subscriber_import_run_task", import_id=job.pk, resume=True)
                return job
        job.total_rows = processed
        job.status = SubscriberImport.Status.DONE
        if job.subscriptions_created >= ANALYZE_AFTER_ROWS:
            _analyze()
    except ApplicationError as exc:
        job.status, job.failure = SubscriberImport.Status.FAILED, exc.message[:500]
    except Exception as exc:
        logger.exception("import %s failed", import_id)
        job.status = SubscriberImport.Status.FAILED
        job.failure = f"Unexpected error ({exc.__class__.__name__}); the rows imported so far are kept."[:500]
    finally:
        if reader is not None:
            reader.close()
    job.errors = [e.as_dict() for e in errors[:MAX_IMPORT_ERRORS]]
    job.finished_at = timezone.now()
    job.data = b""  # personal data; not needed any more
    job.save()
    audit_log(
        action="subscribers.imported", actor_label=job.created_by_label, target=job,
        details={
            "status": job.status, "rows": job.total_rows, "new_people": job.subscribers_created,
            "known_people": job.subscribers_matched, "subscriptions": job.subscriptions_created,
            "rejected_rows": job.rows_rejected,
        },
    )  # fmt: skip
    return job


def _analyze() -> None:
    """Fresh planner statistics after a large import: until autovacuum gets to it, PostgreSQL
    would plan the admin lists as if the tables were still small."""
    with db.cursor() as cursor:
        cursor.execute("ANALYZE subscribers_subscriber, messengers_contact, subscribers_subscription")


def _count_rows(file_format: str, data: bytes) -> int | None:
    if file_format == SubscriberImport.Format.CSV:
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        return max(0, lines - 1)  # an estimate for the progress bar (quoted line breaks count too)
    return None


def _flush(
    job: SubscriberImport,
    chunk: list[Record],
    explicit: bool,
    lookups: Lookups,
    errors: list[RowError],
    processed: int,
) -> None:
    with transaction.atomic():
        # Not waiting for the disk at every chunk's commit: a crash can then lose the last chunks,
        # but only together with their progress (same transaction), and resuming the import
        # redoes exactly those rows.
        with db.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        if chunk:
            result = _import_chunk(chunk, job, explicit, lookups)
            errors.extend(result.errors)
            job.rows_rejected += len(result.errors)
            job.subscribers_created += result.created
            job.subscribers_matched += result.matched
            job.subscriptions_created += result.subscriptions
        job.processed_rows = processed
        job.errors = [e.as_dict() for e in errors[:MAX_IMPORT_ERRORS]]
        _save_progress(
            job,
            ["processed_rows", "rows_rejected", "subscribers_created", "subscribers_matched",
             "subscriptions_created", "errors"],
        )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------
FORMULA_START = ("=", "@", "\t", "\r")
FREE_TEXT_COLUMNS = frozenset({"name", "district", "interests", "source_detail"})


def _safe(column: str, value: str) -> str:
    """Spreadsheet programs run cells that start like formulas; names come from messenger
    profiles, so they are untrusted."""
    if value.startswith(FORMULA_START) or (column in FREE_TEXT_COLUMNS and value.startswith(("+", "-"))):
        return "'" + value
    return value


@dataclass(frozen=True)
class Export:
    filename: str
    content_type: str
    chunks: Iterator[bytes]


def subscribers_export(
    *, channel: Channel, file_format: str, actor: User | None, request: HttpRequest | None = None
) -> Export:
    """The channel's active subscribers as CSV (streamed) or XLSX; audit-logged."""
    if file_format not in SubscriberImport.Format.values:
        raise ApplicationError(IMPORT_FORMAT_UNKNOWN)
    audit_log(
        action="channel.subscribers_exported", actor=actor, target=channel, request=request,
        details={"format": file_format},
    )  # fmt: skip
    stamp = timezone.localtime().strftime("%Y-%m-%d")
    columns = selectors.EXPORT_COLUMNS
    rows = (
        [_safe(column, value) for column, value in zip(columns, row, strict=True)]
        for row in selectors.channel_subscriber_rows(channel)
    )
    if file_format == SubscriberImport.Format.CSV:
        return Export(f"{channel.slug}-subscribers-{stamp}.csv", "text/csv; charset=utf-8", _csv_chunks(columns, rows))
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(channel.name[:31] or "subscribers")
    sheet.append(columns)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return Export(
        f"{channel.slug}-subscribers-{stamp}.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        iter([buffer.getvalue()]),
    )


def _csv_chunks(columns: list[str], rows: Iterator[list[str]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")  # Excel needs the BOM to read UTF-8
    writer.writerow(columns)
    for number, row in enumerate(rows, start=1):
        writer.writerow(row)
        if number % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
