"""Spreadsheet files for the import tests, built by hand: a minimal XLSX package (the parts
openpyxl needs) whose sheet and shared strings can be anything, streamed into the zip so that
hostile files (zip bombs, huge cells, a million empty rows) cost little memory to make."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Sequence
from xml.sax.saxutils import escape

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
STRINGS_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
WORKBOOK_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"

HEADER = ["name", "email", "channels", "consent_source", "consent_date"]


def column_letter(index: int) -> str:
    """1 → A, 27 → AA."""
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def row_xml(number: int, values: Sequence[str], *, first_column: int = 1) -> bytes:
    cells = "".join(
        f'<c r="{column_letter(first_column + i)}{number}" t="inlineStr"><is><t>{escape(v)}</t></is></c>'
        for i, v in enumerate(values)
    )
    return f'<row r="{number}">{cells}</row>'.encode()


def sheet_xml(rows: Iterable[bytes], *, dimension: str | None = None) -> Iterable[bytes]:
    yield b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    yield f'<worksheet xmlns="{MAIN}">'.encode()
    if dimension:
        yield f'<dimension ref="{dimension}"/>'.encode()
    yield b"<sheetData>"
    yield from rows
    yield b"</sheetData></worksheet>"


def good_rows(count: int, *, start: int = 2) -> Iterable[bytes]:
    yield row_xml(1, HEADER)
    for i in range(count):
        yield row_xml(start + i, [f"Person {i}", f"p{i}@example.org", "feinstaub", "Liste", "2024-01-01"])


def package(
    sheet: Iterable[bytes],
    *,
    shared_strings: Iterable[bytes] | None = None,
    extra: dict[str, bytes] | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """An .xlsx file: the sheet (and shared strings) are written chunk by chunk."""
    overrides = [f'<Override PartName="/xl/workbook.xml" ContentType="{WORKBOOK_TYPE}"/>',
                 f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{SHEET_TYPE}"/>']  # fmt: skip
    if shared_strings is not None:
        overrides.append(f'<Override PartName="/xl/sharedStrings.xml" ContentType="{STRINGS_TYPE}"/>')
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            + "".join(overrides) + "</Types>",
        )  # fmt: skip
        archive.writestr(
            "_rels/.rels",
            f'<Relationships xmlns="{RELS}"><Relationship Id="rId1" Type="{DOC_RELS}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>',
        )
        archive.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{MAIN}" xmlns:r="{DOC_RELS}"><sheets><sheet name="Liste" sheetId="1" r:id="rId1"/>'
            "</sheets></workbook>",
        )
        archive.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<Relationships xmlns="{RELS}"><Relationship Id="rId1" Type="{DOC_RELS}/worksheet" '
            'Target="worksheets/sheet1.xml"/></Relationships>',
        )
        with archive.open("xl/worksheets/sheet1.xml", "w") as part:
            for chunk in sheet:
                part.write(chunk)
        if shared_strings is not None:
            with archive.open("xl/sharedStrings.xml", "w") as part:
                for chunk in shared_strings:
                    part.write(chunk)
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return buffer.getvalue()


def repeated(chunk: bytes, total: int) -> Iterable[bytes]:
    """`total` bytes made of `chunk`, yielded a megabyte at a time."""
    block = chunk * max(1, (1 << 20) // len(chunk))
    left = total
    while left > 0:
        piece = block[:left]
        left -= len(piece)
        yield piece
