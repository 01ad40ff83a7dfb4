"""Import of subscribers from CSV/XLSX, and export of a channel's subscribers.

An import is stored (SubscriberImport, file included) and run by a worker in chunks of
CHUNK_ROWS rows, each chunk in its own transaction, so progress is visible while it runs and a
crash loses at most one chunk (running it again is safe). Per chunk it costs a constant number
of queries: look up known contacts and references, then bulk-create people, contacts,
subscriptions and their ledger entries.

Uploads come from outside and may be hostile (zip bombs, huge cells, a million empty rows, odd
encodings): the web request only checks what is cheap and stores the file; the worker checks
the whole file against the limits before it imports a row, and every failure ends the job as
failed with a message, its file deleted (see "Reading files" and "The import as a whole").

Every row needs a consent source and date (the proof the organisation holds), at least one
address, and at least one channel (from its own column or the import's default channels). A
row with any problem is rejected as a whole and listed in the error report with its row
number; nothing is imported halfway. Re-importing the same file changes nothing: people are
recognised by their addresses (or the external reference), subscriptions are never
duplicated, and a subscription the person ended is never switched on again by an import.
"""

from __future__ import annotations

import base64
import codecs
import csv
import hashlib
import io
import logging
import queue
import re
import secrets
import struct
import threading
import zipfile
import zoneinfo
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from time import monotonic
from typing import Any
from xml.parsers import expat

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import DatabaseError, transaction
from django.utils import timezone, translation
from django.utils.formats import number_format
from django.utils.translation import gettext_lazy

from accounts.models import User
from accounts.services import audit_log
from channels.keywords import match_key
from channels.models import Channel
from core.errors import ApplicationError
from core.http import RequestMeta
from core.tasks import enqueue_tenant_task
from core.tenancy import connection as db
from messengers.models import Connection, Contact
from subscribers import selectors, tasks
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
# A batch is also handed on after this many rows read (good or bad), so a file of rejected rows
# shows progress, keeps to the time budget and holds at most one batch of row errors.
CHUNK_ROWS = 5000
MAX_IMPORT_ERRORS = 5000
# Below the queue's task timeout (Q_CLUSTER["timeout"], 300 s): a longer import continues in a
# new task instead of being killed halfway.
TIME_BUDGET_SECONDS = 200
ANALYZE_AFTER_ROWS = 10_000

# Limits of uploads (the per-deployment ones are settings: IMPORT_MAX_FILE_BYTES, IMPORT_MAX_ROWS,
# IMPORT_MAX_CELL_CHARS, IMPORT_MAX_XLSX_CELLS, IMPORT_MAX_XLSX_BYTES; see docs/operations.md).
MAX_COLUMNS = 1000  # a wider row is refused, so no row can be widened to Excel's 16,384 columns
PREVIEW_BYTES = 64 * 1024  # what the upload request reads of a CSV to check its header at once
# csv.Sniffer's quote guessing is quadratic in its sample (8 KB of '",' cost seconds): a header
# and a few dozen lines are enough to tell the delimiter.
CSV_SNIFF_CHARS = 4096
# An .xlsx file is a zip of XML parts. Checked from the zip's directory at upload (nothing is
# unpacked there) and, in the worker, by streaming every part through expat before openpyxl
# sees the file: openpyxl keeps every shared string and every unknown element in memory.
XLSX_MAX_PARTS = 1000
XLSX_MAX_DIRECTORY_BYTES = 1 << 20
XLSX_MAX_RATIO = 100  # real workbooks compress 5-20 fold; zip bombs 1,000 fold and more
XLSX_RATIO_FROM_BYTES = 1 << 20  # small parts may compress as they like
XLSX_MAX_SHARED_STRINGS_BYTES = 64 << 20  # held in memory as a whole by openpyxl
XLSX_MAX_PART_BYTES = 8 << 20  # styles, workbook, relationships …: parsed as a whole
XLSX_MAX_OTHER_ELEMENTS = 500_000  # per part that is neither a sheet nor the shared strings
XLSX_MAX_LOOSE_ELEMENTS = 200_000  # per sheet, outside its rows (links, formatting rules …)
XLSX_MAX_ROW_ELEMENTS = 16 * MAX_COLUMNS  # within one row
XLSX_MAX_STRING_ELEMENTS = 1000  # within one shared string (rich-text runs)
XLSX_MAX_DEPTH = 64
XLSX_SCAN_CHUNK = 1 << 20
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Excel 97-2003 (.xls)

# Messages about the file as a whole (the job's failure, or the upload form's error), in the
# language of the person who uploaded it (the worker runs in that language).
IMPORT_FILE_TOO_BIG = gettext_lazy(
    "The file is larger than %(limit)s MB. Split it into smaller files and upload them one after another."
)
IMPORT_FILE_EMPTY = gettext_lazy("The file is empty (it has no rows). Check that you chose the right file.")
IMPORT_FORMAT_UNKNOWN = gettext_lazy("Please upload a CSV file (.csv) or an Excel workbook (.xlsx).")
IMPORT_OLD_EXCEL = gettext_lazy(
    "This is an old Excel file (.xls). Open it in Excel or LibreOffice, save it as an Excel workbook (.xlsx) or "
    "as “CSV UTF-8”, and upload that."
)
IMPORT_ENCRYPTED_EXCEL = gettext_lazy(
    "The workbook is protected by a password. Open it in Excel, remove the password (File → Info → Protect "
    "Workbook), save it and upload it again."
)
IMPORT_CHANNEL_UNKNOWN = gettext_lazy(
    "One of the chosen channels does not exist any more. Reload the page and choose again."
)
IMPORT_PARTY_NEEDS_EXPLICIT = gettext_lazy(
    "Your organisation processes political opinions: confirm that every person in the file gave explicit "
    "consent (GDPR Art. 9(2)(a)) before importing."
)
IMPORT_MISSING_COLUMNS = gettext_lazy(
    "The header row lacks the required column(s): %(columns)s. Required: %(required)s."
)
IMPORT_NO_ADDRESS_COLUMN = gettext_lazy("The header row has no address column; add at least one of: %(columns)s.")
IMPORT_UNREADABLE = gettext_lazy(
    "The file could not be read as %(format)s (%(detail)s). Open it in a spreadsheet program, save it again and "
    "upload it once more."
)
IMPORT_NUL_BYTES = gettext_lazy(
    "The file contains NUL bytes (the first in line %(line)s), so it is not a plain text file: perhaps UTF-16 "
    "without a byte order mark, or no CSV file at all. Save it as “CSV UTF-8” and upload it again."
)
IMPORT_CONTROL_CHARACTERS = gettext_lazy(
    "The file contains control characters (the first in line %(line)s), so it is not a plain text file. Save it "
    "as “CSV UTF-8” and upload it again."
)
IMPORT_NOT_TEXT = gettext_lazy(
    "The file is neither UTF-8 nor Windows-1252 text (line %(line)s). Save it as “CSV UTF-8” and upload it again."
)
IMPORT_BAD_BOM = gettext_lazy(
    "The file starts like %(encoding)s text but is not valid %(encoding)s (line %(line)s). Save it as “CSV UTF-8” "
    "and upload it again."
)
IMPORT_TOO_MANY_ROWS = gettext_lazy(
    "The file has more than %(limit)s rows (empty rows count too). Split it into smaller files, or delete the empty "
    "rows at its end."
)
IMPORT_CELL_TOO_LONG = gettext_lazy(
    "A cell in row %(row)s is longer than %(limit)s characters, the most a spreadsheet cell can hold. Shorten it or "
    "delete that column, and upload the file again."
)
IMPORT_XLSX_CELL_TOO_LONG = gettext_lazy(
    "A cell is longer than %(limit)s characters, the most a spreadsheet cell can hold (in %(part)s). Shorten it or "
    "delete that column, and upload the file again."
)
IMPORT_TOO_MANY_COLUMNS = gettext_lazy(
    "The file has more than %(limit)s columns. Delete the columns you do not need (also any far to the right) and "
    "upload it again."
)
IMPORT_TOO_MANY_CELLS = gettext_lazy(
    "The workbook has more than %(limit)s cells. Split it into smaller files, or save it as “CSV UTF-8”, and upload "
    "that."
)
IMPORT_XLSX_TOO_BIG = gettext_lazy(
    "The workbook would take more than %(limit)s MB unpacked. Save it as “CSV UTF-8”, or split it into smaller files."
)
IMPORT_XLSX_PART_TOO_BIG = gettext_lazy(
    "Part %(part)s of the workbook would take more than %(limit)s MB unpacked. Copy the list into a new workbook "
    "(without formatting or pictures), or save it as “CSV UTF-8”, and upload that."
)
IMPORT_XLSX_RATIO = gettext_lazy(
    "Part %(part)s of the workbook is compressed more than %(ratio)s-fold, as only a zip bomb is. Open the file in a "
    "spreadsheet program, save it again and upload it once more."
)
IMPORT_XLSX_TOO_MANY_PARTS = gettext_lazy(
    "The workbook consists of more than %(limit)s parts (sheets, pictures …). Copy the list into a new workbook and "
    "upload that."
)
IMPORT_XLSX_TOO_MANY_ELEMENTS = gettext_lazy(
    "Part %(part)s of the workbook holds more than %(limit)s entries besides its cells (links, formatting …). Copy "
    "only the list into a new workbook, or save it as “CSV UTF-8”, and upload that."
)
IMPORT_XLSX_FOREIGN = gettext_lazy(
    "The workbook contains XML that no spreadsheet program writes (%(what)s in %(part)s). Open it in a spreadsheet "
    "program, save it again and upload it once more."
)
IMPORT_XLSX_NO_SHEET = gettext_lazy(
    "The workbook has no worksheet. Put the list on the first worksheet and upload it again."
)
IMPORT_STALLED = gettext_lazy(
    "The import stopped: no worker has worked on it for more than %(minutes)s minutes (probably a restart). The "
    "rows imported so far are kept; upload the file again to import the rest (that is safe)."
)
IMPORT_UNEXPECTED = gettext_lazy(
    "The import failed unexpectedly (%(error)s). The rows imported so far are kept; upload the file again to import "
    "the rest (that is safe). If it fails again, please tell your administrator."
)


def _number(value: int) -> str:
    return number_format(value, force_grouping=True)


def _refuse(message: Any, **params: Any) -> ApplicationError:
    """The error for a file-level problem, in the active language. Limits (`limit`) are written
    with the language's digit grouping (1,000,000 / 1.000.000); row and line numbers are not."""
    if "limit" in params and isinstance(params["limit"], int):
        params["limit"] = _number(params["limit"])
    return ApplicationError(str(message) % params if params else str(message))


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
#
# An upload is checked twice. The web request checks only what is cheap whatever the file holds
# (`upload_check`: a CSV's encoding and header from its first PREVIEW_BYTES, an XLSX's zip
# directory), so a hostile file cannot tie up a web process. The worker checks the whole file
# before the first row is imported (`import_file_open`). Whatever is wrong ends as an
# ApplicationError with a message for the uploader; nothing else escapes from this section
# (tests/subscribers/test_import_hardening.py feeds it junk).
#
# Encodings of CSV files: a byte order mark decides (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE).
# Without one the file must be UTF-8, or else it is read as Windows-1252, which German Excel
# writes for "CSV" and which agrees with ISO-8859-1 on every printable character. NUL bytes,
# control characters (other than tab, line breaks and a DOS end-of-file mark at the very end)
# and bytes that Windows-1252 leaves undefined mean the file is no text: it is refused.
# --------------------------------------------------------------------------------------------
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"),  # before UTF-16 LE, whose mark it starts with
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)
# C0 controls except tab, line feed, vertical tab, form feed and carriage return; DEL; C1 controls
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F])
_NOT_CONTROL_BYTES = bytes(b for b in range(256) if b not in _CONTROL_BYTES)
_C1_IN_UTF8 = re.compile(rb"\xc2[\x80-\x9f]")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")


def detect_format(filename: str, data: bytes) -> str:
    name = filename.lower()
    if data.startswith(OLE_MAGIC):  # a password-protected .xlsx is such a container too
        raise _refuse(IMPORT_ENCRYPTED_EXCEL if name.endswith(".xlsx") else IMPORT_OLD_EXCEL)
    if data[:4] in _ZIP_MAGIC or name.endswith(".xlsx"):
        return SubscriberImport.Format.XLSX
    if (
        name.endswith((".csv", ".txt", ".tsv"))
        or data.startswith(tuple(bom for bom, _, _ in _BOMS))
        or b"\x00" not in data[:4096]
    ):
        return SubscriberImport.Format.CSV
    raise _refuse(IMPORT_FORMAT_UNKNOWN)


def _junk(text: str) -> ApplicationError | None:
    bad = _CONTROL.search(text)
    if bad is None:
        return None
    line = text.count("\n", 0, bad.start()) + 1
    return _refuse(IMPORT_NUL_BYTES if bad.group() == "\x00" else IMPORT_CONTROL_CHARACTERS, line=line)


def decode_csv(data: bytes, *, final: bool = True) -> str:
    """The text of a CSV upload, by the encoding rule above. `final=False` decodes the beginning
    of a file (a character cut off at its end is left out)."""
    for bom, codec, label in _BOMS:
        if data.startswith(bom):
            body = data[len(bom) :]
            try:
                text = codecs.getincrementaldecoder(codec)().decode(body, final=final)
            except UnicodeDecodeError as exc:
                line = body[: exc.start].decode(codec, "replace").count("\n") + 1
                raise _refuse(IMPORT_BAD_BOM, encoding=label, line=line) from None
            if final:
                text = text.rstrip("\x1a")
            junk = _junk(text)
            if junk is not None:
                raise junk
            return text
    if final:
        data = data.rstrip(b"\x1a")  # DOS end-of-file mark
    controls = data.translate(None, _NOT_CONTROL_BYTES)  # the control bytes, in order
    if controls:
        first = data.find(b"\x00" if b"\x00" in controls else controls[:1])
        message = IMPORT_NUL_BYTES if b"\x00" in controls else IMPORT_CONTROL_CHARACTERS
        raise _refuse(message, line=data.count(b"\n", 0, first) + 1)
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=final)
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise _refuse(IMPORT_NOT_TEXT, line=data.count(b"\n", 0, exc.start) + 1) from None
    if b"\xc2" in data and (c1 := _C1_IN_UTF8.search(data)):
        raise _refuse(IMPORT_CONTROL_CHARACTERS, line=data.count(b"\n", 0, c1.start()) + 1)
    return text


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel keeps phone numbers as numbers
    return str(value).strip()


def _csv_dialect(text: str) -> Any:
    try:
        return csv.Sniffer().sniff(text[:CSV_SNIFF_CHARS], delimiters=",;\t|")
    except Exception:  # a heuristic: whatever it trips over, the standard dialect is the answer
        return csv.excel


def _csv_reader(text: str, dialect: Any) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(text, newline=""), dialect)


def _longest_line(text: str) -> int:
    lines = re.split("\r\n|\r|\n", text) if "\r" in text else text.split("\n")
    return max(map(len, lines))


def _check_csv(text: str, dialect: Any) -> int:
    """Refuse a CSV with more rows than IMPORT_MAX_ROWS (empty ones too) or a cell longer than
    IMPORT_MAX_CELL_CHARS. Reads the rows only when cheaper bounds cannot tell: without quotes a
    cell never spans lines, and a file has no more rows than line breaks + 1. Returns the number
    of data rows (the header not counted), for the progress bar."""
    max_rows, max_chars = settings.IMPORT_MAX_ROWS, settings.IMPORT_MAX_CELL_CHARS
    newlines = text.count("\n")
    if (
        newlines + text.count("\r") < max_rows
        and (getattr(dialect, "quotechar", None) or '"') not in text
        and (len(text) <= max_chars or _longest_line(text) <= max_chars)
    ):
        lines = (newlines or text.count("\r")) + (0 if text.endswith(("\n", "\r")) else 1)
        return max(0, lines - 1)
    rows = 0
    try:
        for row in _csv_reader(text, dialect):
            rows += 1
            if rows > max_rows:
                raise _refuse(IMPORT_TOO_MANY_ROWS, limit=max_rows)
            if sum(map(len, row)) > max_chars and max(map(len, row)) > max_chars:
                raise _refuse(IMPORT_CELL_TOO_LONG, row=rows, limit=max_chars)
    except csv.Error as exc:
        if "field limit" in str(exc):  # csv's own bound (131,072 characters)
            raise _refuse(IMPORT_CELL_TOO_LONG, row=rows + 1, limit=max_chars) from None
        raise _refuse(IMPORT_UNREADABLE, format="CSV", detail=str(exc)) from None
    return max(0, rows - 1)


def _csv_rows(text: str, dialect: Any) -> Iterator[tuple[int, list[Any]]]:
    try:
        for number, row in enumerate(_csv_reader(text, dialect), start=1):
            yield number, [cell.strip() for cell in row]
    except csv.Error as exc:
        raise _refuse(IMPORT_UNREADABLE, format="CSV", detail=str(exc)) from None


# XLSX --------------------------------------------------------------------------------------
_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_WORKSHEET, _SST, _ROW, _SI = (f"{_MAIN_NS} {tag}" for tag in ("worksheet", "sst", "row", "si"))
_XML_START = re.compile(rb"\s*<")
_XML_ENCODING = re.compile(rb"""<\?xml[^>]*?encoding\s*=\s*["']([^"']*)""")
_WIDE_ENCODINGS = (b"\xff\xfe", b"\xfe\xff", b"\x00<", b"<\x00")  # UTF-16, which expat detects


def _unreadable_xlsx(detail: str) -> ApplicationError:
    return _refuse(IMPORT_UNREADABLE, format="XLSX", detail=detail[:200])


def _xlsx_archive(data: bytes) -> zipfile.ZipFile:
    """Open the workbook's zip after checking its directory: number of parts, unpacked size,
    compression ratio. Unpacks nothing (the sizes are the directory's, and zipfile never
    returns more than those)."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 0xFFFF))
    if end < 0 or len(data) < end + 22:
        raise _unreadable_xlsx("no zip archive")
    # the directory's own size and entry count, before zipfile builds an object per entry
    entries, directory_bytes = struct.unpack_from("<10xHL", data, end)
    if entries > XLSX_MAX_PARTS or directory_bytes > XLSX_MAX_DIRECTORY_BYTES:
        raise _refuse(IMPORT_XLSX_TOO_MANY_PARTS, limit=XLSX_MAX_PARTS)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except Exception as exc:  # zipfile raises many kinds for a damaged directory
        raise _unreadable_xlsx(exc.__class__.__name__) from None
    if len(infos) > XLSX_MAX_PARTS:
        raise _refuse(IMPORT_XLSX_TOO_MANY_PARTS, limit=XLSX_MAX_PARTS)
    max_bytes = settings.IMPORT_MAX_XLSX_BYTES
    if sum(info.file_size for info in infos) > max_bytes:
        raise _refuse(IMPORT_XLSX_TOO_BIG, limit=max_bytes >> 20)
    for info in infos:
        if info.file_size > XLSX_RATIO_FROM_BYTES and info.file_size > XLSX_MAX_RATIO * max(1, info.compress_size):
            raise _refuse(IMPORT_XLSX_RATIO, part=info.filename[:100], ratio=XLSX_MAX_RATIO)
    return archive


@dataclass
class _XlsxBudget:
    """What the shared strings may take, over all parts (openpyxl keeps them all in memory)."""

    strings: int = 0
    characters: int = 0


class _XmlPartScan:
    """One part of a workbook streamed through expat (never held whole), refused as soon as it
    goes beyond a bound. The bounds follow what openpyxl does with the part:

    * rows (any `row` element, as openpyxl reads them): numbers rising, none above
      IMPORT_MAX_ROWS (openpyxl fills a gap with empty rows); at most MAX_COLUMNS columns and
      XLSX_MAX_ROW_ELEMENTS elements each; at most IMPORT_MAX_XLSX_CELLS cells;
    * text: no cell (or shared string, rich-text runs together) and no other text longer than
      IMPORT_MAX_CELL_CHARS; shared strings together within XLSX_MAX_SHARED_STRINGS_BYTES;
    * elements that openpyxl keeps (everything outside rows and shared strings) and, in parts it
      parses as a whole (styles, workbook …), the part's size and its elements;
    * no DOCTYPE (entities), comments, CDATA or processing instructions, no UTF-16: no
      spreadsheet program writes them, and they would slip past the bounds below. Before expat
      sees a chunk, no run of bytes without a "<" may be longer than the longest cell could be
      written, so expat never buffers a longer token.

    Parts that do not start like XML (pictures) are skipped: openpyxl parses none of them. A part
    that is not well-formed is read up to its first error only: openpyxl's parser (expat too)
    stops at the same place, should it read the part at all (Excel's VML drawings, which it
    does not read, need not be well-formed)."""

    def __init__(self, info: zipfile.ZipInfo, budget: _XlsxBudget) -> None:
        self.part = info.filename[:100]
        self.size = info.file_size
        self.budget = budget
        self.max_rows = settings.IMPORT_MAX_ROWS
        self.max_cells = settings.IMPORT_MAX_XLSX_CELLS
        self.max_chars = settings.IMPORT_MAX_CELL_CHARS
        # one character is at most 10 bytes written ("&#x10FFFF;"), a tag is short
        self.max_token = 10 * self.max_chars + 4096
        self.binary = False
        self.kind = ""  # "worksheet", "sst" or "other", from the root element
        self.depth = self.elements = self.loose = 0
        self.rows = self.row = self.cells = self.column = 0
        self.record_depth = self.record_elements = 0  # the open row or shared string
        self.inner = 0
        self.max_inner = 4 * self.max_cells + self.max_rows  # a cell is 2-4 elements (c, v or is, t)
        self.string_depth = 0  # the open shared string
        self.text_depth = self.text = 0  # the open cell or shared string, and its characters
        self.offset = 0
        self.last_lt = -1
        self.previous = b""
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.buffer_text = True
        parser.buffer_size = 1 << 16
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._characters
        parser.StartDoctypeDeclHandler = self._doctype
        self.parser = parser

    def _foreign(self, what: str) -> ApplicationError:
        return _refuse(IMPORT_XLSX_FOREIGN, what=what, part=self.part)

    # bytes ----------------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        if self.offset == 0:
            self._first(chunk)
            if self.binary:
                return
        self._check_bytes(chunk)
        self.parser.Parse(chunk, False)
        self.offset += len(chunk)
        self.previous = chunk[-1:]

    def close(self) -> None:
        if not self.binary and self.offset:
            self.parser.Parse(b"", True)

    def _first(self, chunk: bytes) -> None:
        if chunk.startswith(_WIDE_ENCODINGS):
            raise self._foreign("UTF-16")
        body = chunk[3:] if chunk.startswith(codecs.BOM_UTF8) else chunk
        if not _XML_START.match(body):
            self.binary = True
            return
        declared = _XML_ENCODING.match(body)
        if declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
            raise self._foreign(f"encoding {declared.group(1)[:20].decode('ascii', 'replace')}")

    def _check_bytes(self, chunk: bytes) -> None:
        checked_from = 0
        if self.offset == 0:
            start = 3 if chunk.startswith(codecs.BOM_UTF8) else 0
            if chunk.startswith(b"<?xml", start):
                checked_from = chunk.find(b"?>", start) + 2
                if checked_from < 2:
                    raise self._foreign("<?xml")
        if (
            b"<!" in chunk
            or chunk.find(b"<?", checked_from) >= 0
            or (self.previous == b"<" and chunk[:1] in (b"!", b"?"))
        ):
            raise self._foreign("<!…> / <?…?>")
        base, end, last = self.offset, self.offset + len(chunk), self.last_lt
        while True:
            window_end = last + 1 + self.max_token  # the next "<" must come before this
            if window_end > end:
                found = chunk.rfind(b"<", max(0, last + 1 - base))
                self.last_lt = base + found if found >= 0 else last
                return
            found = chunk.rfind(b"<", max(0, last + 1 - base), window_end - base)
            if found < 0:
                raise _refuse(IMPORT_XLSX_CELL_TOO_LONG, limit=self.max_chars, part=self.part)
            last = base + found

    # elements -------------------------------------------------------------------------------
    def _doctype(self, *args: Any) -> None:
        raise self._foreign("DOCTYPE")

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        self.elements += 1
        if not self.text_depth:
            self.text = 0
        if self.depth == 1:
            self._root(name)
        elif self.depth > XLSX_MAX_DEPTH:
            raise self._foreign("nesting")
        elif name == _ROW:
            self._row(attrs)
        elif name == _SI:
            self._string()
        elif self.record_depth:
            self.record_elements += 1
            if self.string_depth:
                if self.record_elements > XLSX_MAX_STRING_ELEMENTS:
                    raise self._foreign("rich text")
            else:
                if self.record_elements > XLSX_MAX_ROW_ELEMENTS:
                    raise _refuse(IMPORT_TOO_MANY_COLUMNS, limit=MAX_COLUMNS)
                if self.depth == self.record_depth + 1:
                    self._cell(attrs)
            self.inner += 1  # all elements in rows and shared strings: what openpyxl works through
            if self.inner > self.max_inner:
                raise _refuse(IMPORT_TOO_MANY_CELLS, limit=self.max_cells)
        else:
            self.loose += 1
            limit = XLSX_MAX_OTHER_ELEMENTS if self.kind == "other" else XLSX_MAX_LOOSE_ELEMENTS
            if self.loose > limit:
                raise _refuse(IMPORT_XLSX_TOO_MANY_ELEMENTS, part=self.part, limit=limit)

    def _root(self, name: str) -> None:
        self.kind = "worksheet" if name == _WORKSHEET else "sst" if name == _SST else "other"
        limit = {"sst": XLSX_MAX_SHARED_STRINGS_BYTES, "other": XLSX_MAX_PART_BYTES}.get(self.kind)
        if limit is not None and self.size > limit:
            raise _refuse(IMPORT_XLSX_PART_TOO_BIG, part=self.part, limit=limit >> 20)

    def _row(self, attrs: dict[str, str]) -> None:
        if self.record_depth:
            raise self._foreign("a row inside a row")
        self.rows += 1
        number = self.row + 1 if "r" not in attrs else self._row_number(attrs["r"])
        if number > self.max_rows or self.rows > self.max_rows:
            raise _refuse(IMPORT_TOO_MANY_ROWS, limit=self.max_rows)
        if number <= self.row:  # openpyxl would skip it without a word
            raise _unreadable_xlsx(f"{self.part}: row {number} after row {self.row}")
        self.row = number
        self.column = 0
        self.record_depth, self.record_elements = self.depth, 0

    def _row_number(self, text: str) -> int:
        """A row's number as openpyxl reads it ("7", or "7.0")."""
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = float(text)
        except ValueError:
            value = 0.5
        if not value.is_integer():
            raise _unreadable_xlsx(f"{self.part}: row {text[:20]}")
        return int(value)

    def _cell(self, attrs: dict[str, str]) -> None:
        """A child of a row (openpyxl reads every child of a row as a cell)."""
        self.cells += 1
        if self.cells > self.max_cells:
            raise _refuse(IMPORT_TOO_MANY_CELLS, limit=self.max_cells)
        reference = attrs.get("r")
        if reference:
            letters = reference.rstrip("0123456789").upper()
            column = 0
            for letter in letters[:4]:
                column = column * 26 + ord(letter) - 64
            self.column = column if len(letters) <= 3 else MAX_COLUMNS + 1
        else:
            self.column += 1
        if self.column > MAX_COLUMNS:
            raise _refuse(IMPORT_TOO_MANY_COLUMNS, limit=MAX_COLUMNS)
        self.text_depth, self.text = self.depth, 0

    def _string(self) -> None:
        if self.string_depth:
            raise self._foreign("a shared string inside a shared string")
        self.budget.strings += 1
        if self.budget.strings > self.max_cells:
            raise _refuse(IMPORT_TOO_MANY_CELLS, limit=self.max_cells)
        self.string_depth = self.depth
        if not self.record_depth:
            self.record_depth, self.record_elements = self.depth, 0
        if not self.text_depth:
            self.text_depth, self.text = self.depth, 0

    def _end(self, name: str) -> None:
        depth = self.depth
        if depth == self.text_depth:
            self.text_depth = 0
        if depth == self.string_depth:
            self.string_depth = 0
        if depth == self.record_depth:
            self.record_depth = 0
        self.depth = depth - 1
        if not self.text_depth:
            self.text = 0

    def _characters(self, text: str) -> None:
        self.text += len(text)
        if self.text > self.max_chars:
            raise _refuse(IMPORT_XLSX_CELL_TOO_LONG, limit=self.max_chars, part=self.part)
        if self.string_depth:
            self.budget.characters += len(text)
            if self.budget.characters > XLSX_MAX_SHARED_STRINGS_BYTES:
                raise _refuse(IMPORT_XLSX_PART_TOO_BIG, part=self.part, limit=XLSX_MAX_SHARED_STRINGS_BYTES >> 20)


def xlsx_check(data: bytes) -> int:
    """Check a workbook as a whole before openpyxl reads it: the zip's directory, then every
    part streamed (see _XmlPartScan). Returns the number of rows of its longest sheet."""
    budget = _XlsxBudget()
    rows = 0
    with _xlsx_archive(data) as archive:
        for info in archive.infolist():
            scan = _XmlPartScan(info, budget)
            try:
                with archive.open(info) as stream:
                    while not scan.binary and (chunk := stream.read(XLSX_SCAN_CHUNK)):
                        scan.feed(chunk)
                scan.close()
            except ApplicationError:
                raise
            except expat.ExpatError:
                continue  # not well-formed from here on: see _XmlPartScan
            except Exception as exc:  # zipfile: a bad checksum, an unknown compression, encryption …
                raise _unreadable_xlsx(f"{scan.part}: {exc.__class__.__name__}") from None
            rows = max(rows, scan.rows if scan.kind == "worksheet" else 0)
    return rows


def _xlsx_rows(data: bytes) -> Iterator[tuple[int, list[Any]]]:
    """The first worksheet's rows, after xlsx_check. openpyxl's read-only mode streams the
    sheet; every exception it raises becomes the import's own error."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise _unreadable_xlsx(exc.__class__.__name__) from None
    try:
        if not workbook.worksheets:
            raise _refuse(IMPORT_XLSX_NO_SHEET)
        sheet: Any = workbook.worksheets[0]
        # Read every row, whatever the sheet declares: a wrong declaration would hide rows, and
        # rows and columns are bounded by xlsx_check. Gaps then come as empty lists (cheap).
        sheet.reset_dimensions()
        rows = sheet.iter_rows(values_only=True)
        number = 0
        while True:
            try:
                row = next(rows, None)
            except Exception as exc:
                raise _unreadable_xlsx(exc.__class__.__name__) from None
            if row is None:
                return
            number += 1
            yield number, [_cell(value) for value in row]
    finally:
        workbook.close()


# Both -----------------------------------------------------------------------------------------
@dataclass
class ImportFile:
    """An upload that passed every check, ready to be read row by row."""

    file_format: str
    data: bytes
    text: str = ""  # CSV: the decoded text
    dialect: Any = None  # CSV
    data_rows: int | None = None  # for the progress bar


def import_file_open(file_format: str, data: bytes) -> ImportFile:
    """Check a whole upload before anything of it is imported (in the worker)."""
    if file_format == SubscriberImport.Format.XLSX:
        return ImportFile(file_format, data, data_rows=max(0, xlsx_check(data) - 1))
    text = decode_csv(data)
    dialect = _csv_dialect(text)
    return ImportFile(file_format, data, text=text, dialect=dialect, data_rows=_check_csv(text, dialect))


def import_file_rows(file: ImportFile) -> Iterator[tuple[int, list[Any]]]:
    """(spreadsheet row number, cells) for every row, the header and empty rows included."""
    if file.file_format == SubscriberImport.Format.XLSX:
        return _xlsx_rows(file.data)
    return _csv_rows(file.text, file.dialect)


def read_rows(file_format: str, data: bytes) -> Iterator[tuple[int, list[Any]]]:
    """Check a file and read its rows (see import_file_rows)."""
    return import_file_rows(import_file_open(file_format, data))


def upload_check(file_format: str, data: bytes) -> None:
    """What the web request checks before it stores an upload: only what is cheap whatever the
    file holds. An XLSX's zip directory (nothing unpacked; its header is checked by the worker);
    a CSV's encoding and header, from its first PREVIEW_BYTES."""
    if file_format == SubscriberImport.Format.XLSX:
        _xlsx_archive(data).close()
        return
    whole = len(data) <= PREVIEW_BYTES
    text = decode_csv(data[:PREVIEW_BYTES], final=whole)
    if not whole:
        text = text[: max(text.rfind("\n"), text.rfind("\r")) + 1]  # whole lines only
    try:
        header = next((row for row in _csv_reader(text, _csv_dialect(text)) if any(c.strip() for c in row)), None)
    except csv.Error:
        return  # the worker reads it all and says what is wrong
    if header is None:
        if whole:
            raise _refuse(IMPORT_FILE_EMPTY)
        return
    columns, _ = map_header(header)
    check_header(columns)


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
        raise _refuse(IMPORT_MISSING_COLUMNS, columns=", ".join(missing), required=", ".join(REQUIRED_COLUMNS))
    if not any(c in columns for c in ADDRESS_COLUMNS):
        raise _refuse(IMPORT_NO_ADDRESS_COLUMN, columns=", ".join(ADDRESS_COLUMNS))


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


def _shown(value: Any) -> str:
    """A value as quoted in a row error: short, so 5,000 errors stay small whatever the cells hold."""
    text = str(value)
    return text if len(text) <= 60 else text[:60] + "…"


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
        errors.append(
            RowError(number, "consent_date", f"“{_shown(raw_date)}” is not a date (use 2024-03-31 or 31.03.2024).")
        )
    elif consent_at > lookups.now:
        errors.append(RowError(number, "consent_date", "The consent date lies in the future."))
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
    channel_ids = list(default_channels)
    found, unknown = lookups.channel_list(_text(values.get("channels", "")))
    channel_ids += [pk for pk in found if pk not in channel_ids]
    errors.extend(RowError(number, "channels", f"There is no channel “{_shown(word)}”.") for word in unknown)
    if not channel_ids and not unknown:
        errors.append(RowError(number, "channels", "No channel: fill the channels column or choose default channels."))
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
#
# A job ends as `done` or `failed`, and either way its file (personal data) is deleted. The
# worker turns every exception into a failure with a message; a worker that dies (killed,
# restarted, out of memory) leaves a job whose heartbeat stops: housekeeping fails it after
# IMPORT_STALL_SECONDS (subscriber_imports_fail_stalled). Every write of a running job is
# conditional on it still running, so a job failed meanwhile stays failed.
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
    meta: RequestMeta | None = None,
) -> SubscriberImport:
    """Store an upload and queue its import. Checks only what is cheap whatever the file holds
    (upload_check: a CSV's header is reported right away); the worker checks the rest."""
    if not data:
        raise _refuse(IMPORT_FILE_EMPTY)
    max_bytes = settings.IMPORT_MAX_FILE_BYTES
    if len(data) > max_bytes:
        raise _refuse(IMPORT_FILE_TOO_BIG, limit=max_bytes >> 20)
    if selectors.is_party_tenant() and not explicit_consent:
        raise _refuse(IMPORT_PARTY_NEEDS_EXPLICIT)
    file_format = detect_format(filename, data)
    upload_check(file_format, data)
    channel_ids = [c.pk for c in default_channels]
    if Channel.objects.filter(pk__in=channel_ids).count() != len(set(channel_ids)):
        raise _refuse(IMPORT_CHANNEL_UNKNOWN)
    job = SubscriberImport.objects.create(
        created_by_label=(actor.get_username() if actor is not None else "system")[:200],
        filename=filename[:255], file_format=file_format, file_sha256=hashlib.sha256(data).hexdigest(), data=data,
        default_channel_ids=channel_ids, consent_text=consent_text, explicit_consent=explicit_consent,
        language=translation.get_language() or "",
    )  # fmt: skip
    audit_log(
        action="subscribers.import_started", actor=actor, target=job, meta=meta,
        details={"file": job.filename, "bytes": len(data), "channels": channel_ids},
    )  # fmt: skip
    enqueue_tenant_task(tasks.subscriber_import_run_task, import_id=job.pk, task_name=None)
    return job


@transaction.atomic
def subscriber_import_resume(*, job: SubscriberImport, actor: User | None = None) -> bool:
    """Queue an import again whose task was lost (still waiting) or whose worker died (still
    "running" but not moving). Safe even if it is in fact still running: rows are never imported
    twice. Returns False for finished imports (their file is gone)."""
    job = SubscriberImport.objects.select_for_update().get(pk=job.pk)
    if job.status == SubscriberImport.Status.QUEUED:
        enqueue_tenant_task(tasks.subscriber_import_run_task, import_id=job.pk)
    elif job.status == SubscriberImport.Status.RUNNING:
        enqueue_tenant_task(tasks.subscriber_import_run_task, import_id=job.pk, resume=True)
    else:
        return False
    SubscriberImport.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())  # a new lease
    audit_log(action="subscribers.import_resumed", actor=actor, target=job)
    return True


def subscriber_imports_fail_stalled() -> int:
    """Housekeeping: fail every import that has shown no sign of life (queued, claimed, a chunk
    written) for IMPORT_STALL_SECONDS, and delete its file. Its task was lost or its worker
    died; a live task writes progress every few seconds and never runs longer than the queue's
    timeout. Returns how many were failed."""
    stall = settings.IMPORT_STALL_SECONDS
    cutoff = timezone.now() - timedelta(seconds=stall)
    stalled = SubscriberImport.objects.filter(
        status__in=[SubscriberImport.Status.QUEUED, SubscriberImport.Status.RUNNING], heartbeat_at__lt=cutoff
    )
    failed = 0
    for job in stalled.only("pk", "status", "language", "filename", "processed_rows"):
        with translation.override(job.language or settings.LANGUAGE_CODE):
            failure = str(_refuse(IMPORT_STALLED, minutes=max(1, stall // 60)).message)
        now = timezone.now()
        if SubscriberImport.objects.filter(pk=job.pk, status=job.status, heartbeat_at__lt=cutoff).update(
            status=SubscriberImport.Status.FAILED, failure=failure[:500], data=b"", finished_at=now, heartbeat_at=now
        ):
            failed += 1
            audit_log(
                action="subscribers.import_stalled", actor_label="system", target=job,
                details={"was": job.status, "rows_done": job.processed_rows},
            )  # fmt: skip
    return failed


class _SupersededError(Exception):
    """The job is no longer running (failed by housekeeping meanwhile): stop, write nothing."""


def _save_progress(job: SubscriberImport, fields: list[str]) -> None:
    values = {name: getattr(job, name) for name in fields}
    running = SubscriberImport.objects.filter(pk=job.pk, status=SubscriberImport.Status.RUNNING)
    if not running.update(**values, heartbeat_at=timezone.now()):
        raise _SupersededError


@dataclass
class Batch:
    """Validated rows ready to be written, with what was rejected on the way."""

    records: list[Record]
    errors: list[RowError]
    rejected: int
    processed: int  # data rows read so far, this batch included
    last: bool = False  # nothing follows


def validated_batches(
    file: ImportFile, lookups: Lookups, default_channels: list[int], *, skip: int, header_notes: bool
) -> Iterator[Batch]:
    """Read and validate the file (pure: no database), a batch per CHUNK_ROWS data rows, after
    skipping the first `skip` data rows (done before a hand-over or a crash)."""
    columns: dict[str, int] | None = None
    records: list[Record] = []
    errors: list[RowError] = []
    rejected = processed = read = 0
    for number, cells in import_file_rows(file):
        if not any(c not in ("", None) for c in cells):
            continue
        if columns is None:
            columns, ignored = map_header(cells)
            check_header(columns)
            if header_notes:
                errors.extend(RowError(number, label[:100], "Unknown column, ignored.") for label in ignored[:100])
            continue
        processed += 1
        if processed <= skip:
            continue
        read += 1
        record, row_errors = validate_row(number, cells, columns, lookups, default_channels)
        if record is None:
            errors.extend(row_errors)
            rejected += 1
        else:
            records.append(record)
        if read >= CHUNK_ROWS:
            yield Batch(records, errors, rejected, processed)
            records, errors, rejected, read = [], [], 0, 0
    if columns is None:
        raise _refuse(IMPORT_FILE_EMPTY)
    yield Batch(records, errors, rejected, processed, last=True)


class _ReadAhead:
    """Runs a (database-free) iterator in a thread, one batch ahead: the next chunk is parsed
    and validated while PostgreSQL writes the current one. Exceptions reach the consumer; the
    thread speaks the consumer's language (messages are made there)."""

    _DONE = object()

    def __init__(self, source: Iterator[Batch]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._language = translation.get_language()
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
        with translation.override(self._language):
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


def _keep(errors: list[RowError], more: list[RowError]) -> None:
    """Collect row errors up to MAX_IMPORT_ERRORS (the rest is only counted)."""
    room = MAX_IMPORT_ERRORS - len(errors)
    if room > 0:
        errors.extend(more[:room])


def subscriber_import_run(*, import_id: int, resume: bool = False) -> SubscriberImport:
    """Worker: run a queued import chunk by chunk (each chunk commits on its own). A long import
    hands over to a fresh task before the queue's timeout (TIME_BUDGET_SECONDS) and carries on
    after the rows already done; `resume=True` also continues one whose worker died. Ends the
    job as done or failed (with a message in the uploader's language), its file deleted."""
    job = _import_claim(import_id=import_id, resume=resume)
    if job is None:
        return SubscriberImport.objects.defer("data").get(pk=import_id)  # finished, failed, or taken
    with translation.override(job.language or settings.LANGUAGE_CODE):
        errors = [RowError(e["row"], e["column"], e["message"]) for e in job.errors] if resume else []
        try:
            finished = _import_work(job, errors, resume=resume)
        except _SupersededError:
            return job
        except ApplicationError as exc:
            job.status, job.failure = SubscriberImport.Status.FAILED, exc.message
        except Exception as exc:
            logger.exception("import %s failed", import_id)
            job.status = SubscriberImport.Status.FAILED
            job.failure = _refuse(IMPORT_UNEXPECTED, error=exc.__class__.__name__).message
        else:
            if not finished:
                return job  # handed over to a new task
            job.status = SubscriberImport.Status.DONE
        _import_finish(job, errors)
    return job


def _import_claim(*, import_id: int, resume: bool) -> SubscriberImport | None:
    """Take the job (queued → running), or continue it (`resume`: still running). None if it is
    not ours to run (finished, failed, or another worker claimed it first)."""
    now = timezone.now()
    jobs = SubscriberImport.objects.filter(pk=import_id)
    if resume:
        claimed = jobs.filter(status=SubscriberImport.Status.RUNNING).update(heartbeat_at=now)
    else:
        claimed = jobs.filter(status=SubscriberImport.Status.QUEUED).update(
            status=SubscriberImport.Status.RUNNING, started_at=now, heartbeat_at=now
        )
    return SubscriberImport.objects.get(pk=import_id) if claimed else None


def _import_work(job: SubscriberImport, errors: list[RowError], *, resume: bool) -> bool:
    """Check the file, then import it chunk by chunk. False when handed over to a new task."""
    started = monotonic()
    file = import_file_open(job.file_format, bytes(job.data))
    if not resume:
        job.total_rows = file.data_rows
        _save_progress(job, ["total_rows"])
    explicit = selectors.is_party_tenant() and job.explicit_consent
    lookups = Lookups.load()
    processed = job.processed_rows if resume else 0
    reader = _ReadAhead(
        validated_batches(file, lookups, list(job.default_channel_ids), skip=processed, header_notes=not resume)
    )
    try:
        for batch in reader:
            _keep(errors, batch.errors)
            job.rows_rejected += batch.rejected
            processed = max(processed, batch.processed)
            _flush(job, batch.records, explicit, lookups, errors, processed)
            if not batch.last and monotonic() - started > TIME_BUDGET_SECONDS:
                enqueue_tenant_task(tasks.subscriber_import_run_task, import_id=job.pk, resume=True)
                return False
    finally:
        reader.close()
    job.total_rows = processed
    if job.subscriptions_created >= ANALYZE_AFTER_ROWS:
        _analyze()
    return True


_FINAL_FIELDS = (
    "status", "failure", "errors", "finished_at", "total_rows", "processed_rows", "rows_rejected",
    "subscribers_created", "subscribers_matched", "subscriptions_created",
)  # fmt: skip


def _import_finish(job: SubscriberImport, errors: list[RowError]) -> None:
    """Write the outcome and delete the file, if the job is still ours. Should the outcome not
    be storable (the database refuses a value), the job fails without its error list: it must
    never stay "running" with the file kept."""
    job.failure = job.failure[:500]
    job.errors = [e.as_dict() for e in errors[:MAX_IMPORT_ERRORS]]
    job.finished_at = timezone.now()
    running = SubscriberImport.objects.filter(pk=job.pk, status=SubscriberImport.Status.RUNNING)
    try:
        with transaction.atomic():
            written = running.update(
                **{name: getattr(job, name) for name in _FINAL_FIELDS}, data=b"", heartbeat_at=job.finished_at
            )
    except DatabaseError as exc:
        logger.exception("import %s: could not store its outcome", job.pk)
        job.status = SubscriberImport.Status.FAILED
        job.failure = _refuse(IMPORT_UNEXPECTED, error=exc.__class__.__name__).message[:500]
        job.errors = []
        written = running.update(
            status=job.status, failure=job.failure, errors=[], finished_at=job.finished_at, data=b"",
            heartbeat_at=job.finished_at,
        )  # fmt: skip
    if not written:
        return  # failed by housekeeping meanwhile
    job.data = b""
    audit_log(
        action="subscribers.imported", actor_label=job.created_by_label, target=job,
        details={
            "status": job.status, "rows": job.total_rows, "new_people": job.subscribers_created,
            "known_people": job.subscribers_matched, "subscriptions": job.subscriptions_created,
            "rejected_rows": job.rows_rejected,
        },
    )  # fmt: skip


def _analyze() -> None:
    """Fresh planner statistics after a large import: until autovacuum gets to it, PostgreSQL
    would plan the admin lists as if the tables were still small. Only an optimisation: the
    import has succeeded whatever happens here."""
    try:
        with db.cursor() as cursor:
            cursor.execute("ANALYZE subscribers_subscriber, messengers_contact, subscribers_subscription")
    except DatabaseError:
        logger.exception("ANALYZE after an import failed")


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
            _keep(errors, result.errors)
            job.rows_rejected += len(result.errors)
            job.subscribers_created += result.created
            job.subscribers_matched += result.matched
            job.subscriptions_created += result.subscriptions
        job.processed_rows = processed
        job.errors = [e.as_dict() for e in errors[:MAX_IMPORT_ERRORS]]
        # a job failed by housekeeping meanwhile raises _SupersededError: this chunk is rolled back
        _save_progress(
            job,
            ["processed_rows", "rows_rejected", "subscribers_created", "subscribers_matched",
             "subscriptions_created", "errors"],
        )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------
FORMULA_START = ("=", "@", "\t", "\r")
SIGNED_START = ("+", "-")
FREE_TEXT_COLUMNS = frozenset({"name", "district", "interests", "source_detail"})


def formula_safe(value: str) -> str:
    """A cell for a CSV someone opens in a spreadsheet program, which runs cells that start like
    a formula (=, +, -, @, tab, carriage return): those get a leading apostrophe."""
    return "'" + value if value.startswith(FORMULA_START + SIGNED_START) else value


def _safe(column: str, value: str) -> str:
    """Export cells: like formula_safe, but phone numbers keep their "+" (they are data the
    organisation checks); names come from messenger profiles, so they are untrusted."""
    if value.startswith(FORMULA_START) or (column in FREE_TEXT_COLUMNS and value.startswith(SIGNED_START)):
        return "'" + value
    return value


def subscriber_import_errors_csv(*, job: SubscriberImport) -> str:
    """The rejected rows and notes of an import as CSV (with the BOM Excel needs). Column labels
    come from the uploaded file's header row and messages quote its cells: every cell is
    formula-escaped, the header row included."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    for row in [("row", "column", "message")] + [
        (error.get("row", ""), error.get("column", ""), error.get("message", "")) for error in job.errors
    ]:
        writer.writerow([formula_safe(str(cell)) for cell in row])
    return buffer.getvalue()


@dataclass(frozen=True)
class Export:
    filename: str
    content_type: str
    chunks: Iterator[bytes]


def subscribers_export(
    *, channel: Channel, file_format: str, actor: User | None, meta: RequestMeta | None = None
) -> Export:
    """The channel's active subscribers as CSV (streamed) or XLSX; audit-logged."""
    if file_format not in SubscriberImport.Format.values:
        raise _refuse(IMPORT_FORMAT_UNKNOWN)
    audit_log(
        action="channel.subscribers_exported", actor=actor, target=channel, meta=meta,
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
