"""Export of any analytics table as CSV or XLSX (issue 12, item 7), audit-logged.

A page builds its tables as `Table`s (or takes a chart's data with `table_from_chart`) and lets
`export_response` answer `?format=csv|xlsx` (with `&table=<key>` when the page has several):

    def my_page(request):
        tables = [table_from_chart(chart, key="subscribers"), Table(key="sources", ...)]
        if (response := export_response(request, tables)) is not None:
            return response
        ...render the page; {% include "analytics/export_links.html" with key="sources" %}

Whoever may see the page may export what it shows; each export is written to the audit log as
`analytics.exported` (format, table, row count).

Per-person click data (who clicked which link) is never handed to a tenant in aggregate-only
tracking mode. Where that rule is enforced:
1. broadcasts/links.py `link_click` writes no `LinkClick` rows unless the tenant tracks per
   recipient (only the per-link counter grows);
2. here: a `Table` that holds per-person clicks must say so (`per_person_clicks=True`) and
   `table_export` refuses it unless the tenant tracks per recipient now (a tenant that switched
   to aggregate-only keeps no way to read the rows it collected before);
3. the analytics selectors and roll-ups only ever produce counts per broadcast, link, channel or
   day, never a person's clicks.

Cells that start like a spreadsheet formula are escaped (leading apostrophe) in both formats,
as the subscribers' export does: labels such as broadcast titles and channel names are typed by
people, and names in inbox tables come from messenger profiles.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import tablib
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.utils.translation import gettext_noop

from accounts.services import audit_log
from core.errors import ApplicationError
from core.http import RequestMeta, request_meta, request_user
from subscribers.services.imports import formula_safe

if TYPE_CHECKING:
    from accounts.models import User
    from analytics.charts import Chart

EXPORT_FORMATS = ("csv", "xlsx")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
EXPORT_FORMAT_UNKNOWN = gettext_noop("Choose CSV or XLSX to export.")
EXPORT_PER_PERSON_CLICKS = gettext_noop(
    "This organisation counts link clicks in aggregate only, so there are no per-person clicks to export."
)

Cell = str | Promise | int | float | Decimal | bool | dt.date | dt.datetime | None


@dataclass(frozen=True)
class Table:
    """A table as a page shows it: headers and rows of plain values (numbers stay numbers)."""

    title: str | Promise
    headers: Sequence[str | Promise]
    rows: Sequence[Sequence[Cell]]
    key: str = "table"  # which table of the page (?table=…)
    per_person_clicks: bool = False  # names who clicked what: only for tenants tracking per recipient


@dataclass(frozen=True)
class ExportFile:
    filename: str
    content_type: str
    content: bytes


def table_from_chart(chart: Chart, *, key: str = "") -> Table:
    """A chart's data (its x values and one column per series) as an exportable table."""
    from django.utils.translation import gettext, pgettext

    x_label = chart.x_label or (pgettext("chart table", "Category") if chart.kind == "bar" else gettext("Time"))
    return Table(
        title=chart.title,
        headers=[x_label, *(s.label for s in chart.series)],
        rows=[[x, *(s.values[i] for s in chart.series)] for i, x in enumerate(chart.x)],
        key=key or chart.key,
    )


def per_person_clicks_allowed() -> bool:
    """Whether the current tenant tracks clicks per recipient (never in the public schema)."""
    from tenants.models import Tenant

    tenant = getattr(connection, "tenant", None)
    return getattr(tenant, "link_tracking", None) == Tenant.LinkTracking.PER_RECIPIENT


def _cell(value: Cell) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool | int | float | Decimal):
        return value
    if isinstance(value, dt.datetime):
        # spreadsheets know no time zones: the tenant's local time, as every page shows it
        return timezone.localtime(value).replace(tzinfo=None) if timezone.is_aware(value) else value
    if isinstance(value, dt.date):
        return value
    return formula_safe(str(value))


def table_export(*, table: Table, file_format: str, actor: User | None, meta: RequestMeta | None = None) -> ExportFile:
    """The table as a CSV (UTF-8 with the BOM Excel needs) or XLSX file; audit-logged."""
    if file_format not in EXPORT_FORMATS:
        raise ApplicationError(EXPORT_FORMAT_UNKNOWN)
    if table.per_person_clicks and not per_person_clicks_allowed():
        raise ApplicationError(EXPORT_PER_PERSON_CLICKS)
    title = str(table.title)
    dataset = tablib.Dataset(headers=[_cell(h) for h in table.headers], title=title[:31] or "export")
    for row in table.rows:
        dataset.append([_cell(value) for value in row])
    # CSV with the BOM Excel needs to read UTF-8
    content = ("\ufeff" + dataset.export("csv")).encode() if file_format == "csv" else dataset.export("xlsx")
    audit_log(
        action="analytics.exported",
        actor=actor,
        target_label=title,
        details={"format": file_format, "table": table.key, "rows": len(table.rows)},
        meta=meta,
    )
    stamp = timezone.localdate().isoformat()
    name = slugify(title) or "export"
    return ExportFile(f"{name}-{stamp}.{file_format}", CONTENT_TYPES[file_format], content)


def export_response(request: HttpRequest, tables: Sequence[Table]) -> HttpResponse | None:
    """The file when the request asks for one (`?format=csv|xlsx`, `&table=<key>`), else None.
    Call it after the page's own permission check: it exports what the page would show."""
    file_format = request.GET.get("format")
    if not file_format:
        return None
    key = request.GET.get("table")
    table = next((t for t in tables if t.key == key), None) if key else (tables[0] if tables else None)
    if table is None:
        raise Http404
    try:
        export = table_export(
            table=table, file_format=file_format, actor=request_user(request), meta=request_meta(request)
        )
    except ApplicationError as exc:
        return HttpResponse(exc.localized, status=400, content_type="text/plain; charset=utf-8")
    response = HttpResponse(export.content, content_type=export.content_type)
    response["Content-Disposition"] = content_disposition_header(True, export.filename) or "attachment"
    response["X-Content-Type-Options"] = "nosniff"
    return response
