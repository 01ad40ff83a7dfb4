"""Files we hand out: a channel's subscribers as CSV (streamed) or XLSX, and an import's error
report. Both are opened in spreadsheet programs, so cells that start like a formula are escaped."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from django.utils import timezone
from openpyxl import Workbook

from accounts.models import User
from accounts.services import audit_log
from channels.models import Channel
from core.http import RequestMeta
from subscribers import selectors
from subscribers.models import SubscriberImport
from subscribers.services.imports.messages import IMPORT_FORMAT_UNKNOWN, refuse

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
        raise refuse(IMPORT_FORMAT_UNKNOWN)
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
