"""CSV/XLSX export of analytics tables (analytics/export.py): formula escaping in both formats,
values kept as numbers and local times, the audit log, and no per-person clicks for tenants in
aggregate-only tracking mode."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.test import RequestFactory
from openpyxl import load_workbook

from accounts import roles
from accounts.models import AuditEvent
from analytics.charts import Series, bar_chart, line_chart
from analytics.export import (
    EXPORT_FORMAT_UNKNOWN,
    EXPORT_PER_PERSON_CLICKS,
    Table,
    export_response,
    table_export,
    table_from_chart,
)
from core.errors import ApplicationError
from tenants.models import Tenant
from tenants.services import tenant_update_settings
from tests.factories import make_user

pytestmark = pytest.mark.usefixtures("tenant")
HOSTILE = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "harmless"]


def table(**kwargs: object) -> Table:
    defaults: dict[str, object] = {
        "title": "Quellen",
        "headers": ["=Quelle", "Anzahl", "Anteil", "Tag", "Zeit"],
        "rows": [
            [name, 3, Decimal("0.25"), date(2026, 11, 30), datetime(2026, 11, 30, 23, 30, tzinfo=UTC)]
            for name in HOSTILE
        ]
        + [[None, -4, 1.5, None, None]],
    }
    defaults.update(kwargs)
    return Table(**defaults)  # type: ignore[arg-type]


def test_csv_escapes_formulas_and_keeps_numbers() -> None:
    export = table_export(table=table(), file_format="csv", actor=None)
    assert export.content.startswith("\ufeff".encode())
    assert export.filename.startswith("quellen-") and export.filename.endswith(".csv")
    rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["'=Quelle", "Anzahl", "Anteil", "Tag", "Zeit"]
    assert [row[0] for row in rows[1:-1]] == ["'" + value for value in HOSTILE[:-1]] + ["harmless"]
    # numbers stay numbers (a negative number is no formula), times in the tenant's zone
    assert rows[1][1:] == ["3", "0.25", "2026-11-30", "2026-12-01 00:30:00"]
    assert rows[-1] == ["", "-4", "1.5", "", ""]


def test_xlsx_escapes_formulas_and_keeps_types() -> None:
    export = table_export(table=table(title="Quellen: =1+1 / Übersicht " * 3), file_format="xlsx", actor=None)
    sheet = load_workbook(io.BytesIO(export.content)).active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][0] == "'=Quelle"
    # (XML reads a lone carriage return back as a line feed)
    assert [row[0] for row in values[1:-1]] == ["'" + value.replace("\r", "\n") for value in HOSTILE[:-1]] + [
        "harmless"
    ]
    for row in sheet.iter_rows(min_row=2):
        assert all(cell.data_type != "f" for cell in row)  # no cell is a formula
    assert values[1][1] == 3 and float(values[1][2]) == 0.25
    assert values[1][4] == datetime(2026, 12, 1, 0, 30)
    assert values[-1][1] == -4


def test_exports_are_audit_logged(tenant: Tenant) -> None:
    user = make_user(roles.ADMIN)
    table_export(table=table(key="sources"), file_format="xlsx", actor=user)
    event = AuditEvent.objects.get(action="analytics.exported")
    assert event.actor == user and event.target_label == "Quellen"
    assert event.details == {"format": "xlsx", "table": "sources", "rows": len(HOSTILE) + 1}


def test_unknown_formats_are_refused() -> None:
    with pytest.raises(ApplicationError) as caught:
        table_export(table=table(), file_format="pdf", actor=None)
    assert caught.value.message == EXPORT_FORMAT_UNKNOWN
    assert not AuditEvent.objects.filter(action="analytics.exported").exists()


def test_per_person_clicks_only_for_tenants_that_track_per_recipient(tenant: Tenant) -> None:
    clicks = table(title="Klicks", headers=["Person", "Link"], rows=[["Anna", "https://example.org"]])
    clicks = Table(title=clicks.title, headers=clicks.headers, rows=clicks.rows, per_person_clicks=True)
    tenant_update_settings(tenant=tenant, actor=None, link_tracking=Tenant.LinkTracking.AGGREGATE)
    with pytest.raises(ApplicationError) as caught:
        table_export(table=clicks, file_format="csv", actor=None)
    assert caught.value.message == EXPORT_PER_PERSON_CLICKS
    assert not AuditEvent.objects.filter(action="analytics.exported").exists()
    # aggregate tables are fine in aggregate mode
    assert table_export(table=table(), file_format="csv", actor=None).content
    tenant_update_settings(tenant=tenant, actor=None, link_tracking=Tenant.LinkTracking.PER_RECIPIENT)
    assert b"Anna" in table_export(table=clicks, file_format="csv", actor=None).content


def test_a_chart_exports_its_raw_values() -> None:
    chart = line_chart(
        title="Abonnierende", x=[date(2026, 11, 29), date(2026, 11, 30)], series=[Series("a", [1, None])]
    )
    exported = table_from_chart(chart, key="subs")
    assert exported.key == "subs" and exported.rows == [[date(2026, 11, 29), 1], [date(2026, 11, 30), None]]
    bars = bar_chart(title="Mix", categories=["-Telegram"], series=[Series("n", [2]), Series("m", [3])], key="mix")
    exported = table_from_chart(bars)
    assert exported.key == "mix" and len(exported.headers) == 3
    rows = list(
        csv.reader(io.StringIO(table_export(table=exported, file_format="csv", actor=None).content.decode("utf-8-sig")))
    )
    assert rows[1] == ["'-Telegram", "2", "3"]


def test_the_view_helper_answers_only_when_asked() -> None:
    factory = RequestFactory()
    tables = [table(key="a"), table(key="b", title="Zweite")]
    assert export_response(factory.get("/x/"), tables) is None
    response = export_response(factory.get("/x/", {"format": "csv", "table": "b"}), tables)
    assert response is not None and response.status_code == 200
    assert 'filename="zweite-' in response["Content-Disposition"]
    response = export_response(factory.get("/x/", {"format": "csv"}), tables)
    assert response is not None and 'filename="quellen-' in response["Content-Disposition"]
