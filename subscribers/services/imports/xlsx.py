"""Reading XLSX uploads safely: the zip directory checked before anything is unpacked, every part
streamed through expat against the pre-parse limits (zip bombs, huge cells, a million empty
rows, XML no spreadsheet program writes) before openpyxl sees the file, then the first sheet's
rows. Every problem ends as an ApplicationError with a message for the uploader."""

from __future__ import annotations

import codecs
import io
import re
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from xml.parsers import expat

from django.conf import settings
from openpyxl import load_workbook

from core.errors import ApplicationError
from subscribers.services.imports.messages import (
    IMPORT_TOO_MANY_CELLS,
    IMPORT_TOO_MANY_COLUMNS,
    IMPORT_TOO_MANY_ROWS,
    IMPORT_UNREADABLE,
    IMPORT_XLSX_CELL_TOO_LONG,
    IMPORT_XLSX_FOREIGN,
    IMPORT_XLSX_NO_SHEET,
    IMPORT_XLSX_PART_TOO_BIG,
    IMPORT_XLSX_RATIO,
    IMPORT_XLSX_TOO_BIG,
    IMPORT_XLSX_TOO_MANY_ELEMENTS,
    IMPORT_XLSX_TOO_MANY_PARTS,
    refuse,
)

# Limits of uploads (the per-deployment ones are settings: IMPORT_MAX_ROWS, IMPORT_MAX_CELL_CHARS,
# IMPORT_MAX_XLSX_CELLS, IMPORT_MAX_XLSX_BYTES; see docs/operations.md).
MAX_COLUMNS = 1000  # a wider row is refused, so no row can be widened to Excel's 16,384 columns
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


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel keeps phone numbers as numbers
    return str(value).strip()


_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_WORKSHEET, _SST, _ROW, _SI = (f"{_MAIN_NS} {tag}" for tag in ("worksheet", "sst", "row", "si"))
_XML_START = re.compile(rb"\s*<")
_XML_ENCODING = re.compile(rb"""<\?xml[^>]*?encoding\s*=\s*["']([^"']*)""")
_WIDE_ENCODINGS = (b"\xff\xfe", b"\xfe\xff", b"\x00<", b"<\x00")  # UTF-16, which expat detects


def _unreadable_xlsx(detail: str) -> ApplicationError:
    return refuse(IMPORT_UNREADABLE, format="XLSX", detail=detail[:200])


def xlsx_archive(data: bytes) -> zipfile.ZipFile:
    """Open the workbook's zip after checking its directory: number of parts, unpacked size,
    compression ratio. Unpacks nothing (the sizes are the directory's, and zipfile never
    returns more than those)."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 0xFFFF))
    if end < 0 or len(data) < end + 22:
        raise _unreadable_xlsx("no zip archive")
    # the directory's own size and entry count, before zipfile builds an object per entry
    entries, directory_bytes = struct.unpack_from("<10xHL", data, end)
    if entries > XLSX_MAX_PARTS or directory_bytes > XLSX_MAX_DIRECTORY_BYTES:
        raise refuse(IMPORT_XLSX_TOO_MANY_PARTS, limit=XLSX_MAX_PARTS)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except Exception as exc:  # zipfile raises many kinds for a damaged directory
        raise _unreadable_xlsx(exc.__class__.__name__) from None
    if len(infos) > XLSX_MAX_PARTS:
        raise refuse(IMPORT_XLSX_TOO_MANY_PARTS, limit=XLSX_MAX_PARTS)
    max_bytes = settings.IMPORT_MAX_XLSX_BYTES
    if sum(info.file_size for info in infos) > max_bytes:
        raise refuse(IMPORT_XLSX_TOO_BIG, limit=max_bytes >> 20)
    for info in infos:
        if info.file_size > XLSX_RATIO_FROM_BYTES and info.file_size > XLSX_MAX_RATIO * max(1, info.compress_size):
            raise refuse(IMPORT_XLSX_RATIO, part=info.filename[:100], ratio=XLSX_MAX_RATIO)
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
        return refuse(IMPORT_XLSX_FOREIGN, what=what, part=self.part)

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
                raise refuse(IMPORT_XLSX_CELL_TOO_LONG, limit=self.max_chars, part=self.part)
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
                    raise refuse(IMPORT_TOO_MANY_COLUMNS, limit=MAX_COLUMNS)
                if self.depth == self.record_depth + 1:
                    self._cell(attrs)
            self.inner += 1  # all elements in rows and shared strings: what openpyxl works through
            if self.inner > self.max_inner:
                raise refuse(IMPORT_TOO_MANY_CELLS, limit=self.max_cells)
        else:
            self.loose += 1
            limit = XLSX_MAX_OTHER_ELEMENTS if self.kind == "other" else XLSX_MAX_LOOSE_ELEMENTS
            if self.loose > limit:
                raise refuse(IMPORT_XLSX_TOO_MANY_ELEMENTS, part=self.part, limit=limit)

    def _root(self, name: str) -> None:
        self.kind = "worksheet" if name == _WORKSHEET else "sst" if name == _SST else "other"
        limit = {"sst": XLSX_MAX_SHARED_STRINGS_BYTES, "other": XLSX_MAX_PART_BYTES}.get(self.kind)
        if limit is not None and self.size > limit:
            raise refuse(IMPORT_XLSX_PART_TOO_BIG, part=self.part, limit=limit >> 20)

    def _row(self, attrs: dict[str, str]) -> None:
        if self.record_depth:
            raise self._foreign("a row inside a row")
        self.rows += 1
        number = self.row + 1 if "r" not in attrs else self._row_number(attrs["r"])
        if number > self.max_rows or self.rows > self.max_rows:
            raise refuse(IMPORT_TOO_MANY_ROWS, limit=self.max_rows)
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
            raise refuse(IMPORT_TOO_MANY_CELLS, limit=self.max_cells)
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
            raise refuse(IMPORT_TOO_MANY_COLUMNS, limit=MAX_COLUMNS)
        self.text_depth, self.text = self.depth, 0

    def _string(self) -> None:
        if self.string_depth:
            raise self._foreign("a shared string inside a shared string")
        self.budget.strings += 1
        if self.budget.strings > self.max_cells:
            raise refuse(IMPORT_TOO_MANY_CELLS, limit=self.max_cells)
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
            raise refuse(IMPORT_XLSX_CELL_TOO_LONG, limit=self.max_chars, part=self.part)
        if self.string_depth:
            self.budget.characters += len(text)
            if self.budget.characters > XLSX_MAX_SHARED_STRINGS_BYTES:
                raise refuse(IMPORT_XLSX_PART_TOO_BIG, part=self.part, limit=XLSX_MAX_SHARED_STRINGS_BYTES >> 20)


def xlsx_check(data: bytes) -> int:
    """Check a workbook as a whole before openpyxl reads it: the zip's directory, then every
    part streamed (see _XmlPartScan). Returns the number of rows of its longest sheet."""
    budget = _XlsxBudget()
    rows = 0
    with xlsx_archive(data) as archive:
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


def xlsx_rows(data: bytes) -> Iterator[tuple[int, list[Any]]]:
    """The first worksheet's rows, after xlsx_check. openpyxl's read-only mode streams the
    sheet; every exception it raises becomes the import's own error."""
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise _unreadable_xlsx(exc.__class__.__name__) from None
    try:
        if not workbook.worksheets:
            raise refuse(IMPORT_XLSX_NO_SHEET)
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
