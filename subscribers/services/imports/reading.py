"""Reading uploads: the format, CSV encodings (byte order marks, UTF-8 or Windows-1252) and CSV
limits, the header row, and one way to iterate the rows of a checked file, whatever its format
(XLSX details in subscribers.services.imports.xlsx).

An upload is checked twice. The web request checks only what is cheap whatever the file holds
(`upload_check`: a CSV's encoding and header from its first PREVIEW_BYTES, an XLSX's zip
directory), so a hostile file cannot tie up a web process. The worker checks the whole file
before the first row is imported (`import_file_open`). Whatever is wrong ends as an
ApplicationError with a message for the uploader; nothing else escapes from this module
(tests/subscribers/test_import_hardening.py feeds it junk).

Encodings of CSV files: a byte order mark decides (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE).
Without one the file must be UTF-8, or else it is read as Windows-1252, which German Excel
writes for "CSV" and which agrees with ISO-8859-1 on every printable character. NUL bytes,
control characters (other than tab, line breaks and a DOS end-of-file mark at the very end)
and bytes that Windows-1252 leaves undefined mean the file is no text: it is refused.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from channels.keywords import match_key
from core.errors import ApplicationError
from subscribers.models import SubscriberImport
from subscribers.services.imports.messages import (
    IMPORT_BAD_BOM,
    IMPORT_CELL_TOO_LONG,
    IMPORT_CONTROL_CHARACTERS,
    IMPORT_ENCRYPTED_EXCEL,
    IMPORT_FILE_EMPTY,
    IMPORT_FORMAT_UNKNOWN,
    IMPORT_MISSING_COLUMNS,
    IMPORT_NO_ADDRESS_COLUMN,
    IMPORT_NOT_TEXT,
    IMPORT_NUL_BYTES,
    IMPORT_OLD_EXCEL,
    IMPORT_TOO_MANY_ROWS,
    IMPORT_UNREADABLE,
    refuse,
)
from subscribers.services.imports.xlsx import xlsx_archive, xlsx_check, xlsx_rows

PREVIEW_BYTES = 64 * 1024  # what the upload request reads of a CSV to check its header at once
# csv.Sniffer's quote guessing is quadratic in its sample (8 KB of '",' cost seconds): a header
# and a few dozen lines are enough to tell the delimiter.
CSV_SNIFF_CHARS = 4096
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Excel 97-2003 (.xls)

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
        raise refuse(IMPORT_ENCRYPTED_EXCEL if name.endswith(".xlsx") else IMPORT_OLD_EXCEL)
    if data[:4] in _ZIP_MAGIC or name.endswith(".xlsx"):
        return SubscriberImport.Format.XLSX
    if (
        name.endswith((".csv", ".txt", ".tsv"))
        or data.startswith(tuple(bom for bom, _, _ in _BOMS))
        or b"\x00" not in data[:4096]
    ):
        return SubscriberImport.Format.CSV
    raise refuse(IMPORT_FORMAT_UNKNOWN)


def _junk(text: str) -> ApplicationError | None:
    bad = _CONTROL.search(text)
    if bad is None:
        return None
    line = text.count("\n", 0, bad.start()) + 1
    return refuse(IMPORT_NUL_BYTES if bad.group() == "\x00" else IMPORT_CONTROL_CHARACTERS, line=line)


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
                raise refuse(IMPORT_BAD_BOM, encoding=label, line=line) from None
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
        raise refuse(message, line=data.count(b"\n", 0, first) + 1)
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=final)
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise refuse(IMPORT_NOT_TEXT, line=data.count(b"\n", 0, exc.start) + 1) from None
    if b"\xc2" in data and (c1 := _C1_IN_UTF8.search(data)):
        raise refuse(IMPORT_CONTROL_CHARACTERS, line=data.count(b"\n", 0, c1.start()) + 1)
    return text


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
                raise refuse(IMPORT_TOO_MANY_ROWS, limit=max_rows)
            if sum(map(len, row)) > max_chars and max(map(len, row)) > max_chars:
                raise refuse(IMPORT_CELL_TOO_LONG, row=rows, limit=max_chars)
    except csv.Error as exc:
        if "field limit" in str(exc):  # csv's own bound (131,072 characters)
            raise refuse(IMPORT_CELL_TOO_LONG, row=rows + 1, limit=max_chars) from None
        raise refuse(IMPORT_UNREADABLE, format="CSV", detail=str(exc)) from None
    return max(0, rows - 1)


def _csv_rows(text: str, dialect: Any) -> Iterator[tuple[int, list[Any]]]:
    try:
        for number, row in enumerate(_csv_reader(text, dialect), start=1):
            yield number, [cell.strip() for cell in row]
    except csv.Error as exc:
        raise refuse(IMPORT_UNREADABLE, format="CSV", detail=str(exc)) from None


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
        return xlsx_rows(file.data)
    return _csv_rows(file.text, file.dialect)


def read_rows(file_format: str, data: bytes) -> Iterator[tuple[int, list[Any]]]:
    """Check a file and read its rows (see import_file_rows)."""
    return import_file_rows(import_file_open(file_format, data))


def upload_check(file_format: str, data: bytes) -> None:
    """What the web request checks before it stores an upload: only what is cheap whatever the
    file holds. An XLSX's zip directory (nothing unpacked; its header is checked by the worker);
    a CSV's encoding and header, from its first PREVIEW_BYTES."""
    if file_format == SubscriberImport.Format.XLSX:
        xlsx_archive(data).close()
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
            raise refuse(IMPORT_FILE_EMPTY)
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
        raise refuse(IMPORT_MISSING_COLUMNS, columns=", ".join(missing), required=", ".join(REQUIRED_COLUMNS))
    if not any(c in columns for c in ADDRESS_COLUMNS):
        raise refuse(IMPORT_NO_ADDRESS_COLUMN, columns=", ".join(ADDRESS_COLUMNS))
