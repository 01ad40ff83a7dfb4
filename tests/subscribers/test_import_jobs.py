"""Import jobs that go wrong on the way: hand-overs of files of only bad rows, tasks that are lost,
workers that die (housekeeping fails them, per tenant), and the error report's escaping of
formulas that came with the uploaded file."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone, translation

from accounts.models import AuditEvent
from channels.models import Channel
from subscribers import tasks
from subscribers.models import Subscriber, SubscriberImport
from subscribers.services import imports as import_service
from subscribers.services import subscriber_import_create
from subscribers.services.imports import job as import_job
from tenants.models import Tenant
from tests.conftest import in_tenant
from tests.subscribers.import_helpers import (
    CSV_HEADER,
    assert_failed,
    csv_rows,
    import_channel,
    sign_in_as_admin,
    upload,
)


@pytest.fixture
def channel(tenant: Tenant) -> Channel:
    return import_channel()


# ----------------------------------------------------------------------------------- the job
def test_rejected_rows_alone_still_make_progress_and_hand_over(
    channel: Channel, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file of only bad rows is read in chunks too (progress, time budget, bounded memory)."""
    content = CSV_HEADER + "".join(f"P{i},p{i}@example.org,feinstaub,Liste,\n" for i in range(9))
    monkeypatch.setattr(import_job, "CHUNK_ROWS", 2)
    monkeypatch.setattr(import_job, "TIME_BUDGET_SECONDS", -1)
    with translation.override("en"), django_capture_on_commit_callbacks(execute=False) as first:
        job = subscriber_import_create(filename="liste.csv", data=content.encode())
    with django_capture_on_commit_callbacks(execute=False) as handed_over:
        first[0]()
    job.refresh_from_db()
    assert (job.status, job.processed_rows, job.rows_rejected, len(handed_over)) == ("running", 2, 2, 1)


def _stall(job: SubscriberImport, hours: float = 2) -> None:
    SubscriberImport.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=hours))


def test_an_import_whose_task_was_lost_is_failed_and_wiped_by_housekeeping(
    channel: Channel, django_capture_on_commit_callbacks: Any
) -> None:
    content = (CSV_HEADER + csv_rows(2)).encode()
    with translation.override("en"), django_capture_on_commit_callbacks(execute=False):
        lost = subscriber_import_create(filename="liste.csv", data=content)
        fresh = subscriber_import_create(filename="neu.csv", data=content)
    _stall(lost)
    assert tasks.subscribers_housekeeping_task()["stalled_imports"] == 1
    lost.refresh_from_db()
    fresh.refresh_from_db()
    assert_failed(lost, "stopped")
    assert (fresh.status, bytes(fresh.data)) == ("queued", content)
    assert AuditEvent.objects.filter(action="subscribers.import_stalled", target_id=str(lost.pk)).exists()


def test_an_import_whose_worker_died_is_failed_and_a_late_task_does_not_revive_it(
    channel: Channel, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = (CSV_HEADER + csv_rows(3)).encode()
    with translation.override("en"), django_capture_on_commit_callbacks(execute=False) as first:
        job = subscriber_import_create(filename="liste.csv", data=content)
    monkeypatch.setattr(import_job, "CHUNK_ROWS", 1)
    monkeypatch.setattr(import_job, "TIME_BUDGET_SECONDS", -1)
    with django_capture_on_commit_callbacks(execute=False) as late:
        first[0]()  # one row imported, then the worker "dies": the hand-over is held back
    monkeypatch.undo()
    job.refresh_from_db()
    assert job.status == "running"
    _stall(job, hours=0.5)
    assert tasks.subscribers_housekeeping_task()["stalled_imports"] == 0  # not yet past the lease
    _stall(job)
    assert tasks.subscribers_housekeeping_task()["stalled_imports"] == 1
    late[0]()  # the hand-over finally runs
    job.refresh_from_db()
    assert_failed(job, "stopped")
    assert Subscriber.objects.count() == 1


def test_housekeeping_fails_only_its_own_tenants_stalled_imports(
    channel: Channel, tenant_b: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    content = (CSV_HEADER + csv_rows(1)).encode()
    with in_tenant(tenant_b):
        with django_capture_on_commit_callbacks(execute=False):
            other = subscriber_import_create(filename="b.csv", data=content)
        _stall(other)
    assert tasks.subscribers_housekeeping_task()["stalled_imports"] == 0  # tenant A's run
    with in_tenant(tenant_b):
        other.refresh_from_db()
        assert other.status == "queued"
        assert tasks.subscribers_housekeeping_task()["stalled_imports"] == 1
        other.refresh_from_db()
        assert_failed(other)


# ----------------------------------------------------------------------------------- error report
def test_the_error_report_escapes_formulas_from_the_files_header(
    channel: Channel, client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    hostile = ['=HYPERLINK("http://evil.example","klick")', "+1+1", "-2+3", "@SUM(1)"]
    header = CSV_HEADER.strip() + "," + ",".join(f'"{h.replace(chr(34), chr(34) * 2)}"' for h in hostile) + "\n"
    content = header + "Anna,a@example.org,feinstaub,Liste,2024-01-01,1,2,3,4\n" + "Bernd,b@example.org,feinstaub,,\n"
    job = upload(django_capture_on_commit_callbacks, content.encode(), "liste.csv")
    assert job.status == "done", job.failure
    sign_in_as_admin(client_a)
    report = client_a.get(f"/admin/subscribers/subscriberimport/{job.pk}/errors.csv").content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(report)))
    assert rows[0] == ["row", "column", "message"]
    columns = [row[1] for row in rows[1:]]
    for label in hostile:
        assert "'" + label in columns
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row)


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_report_cells_starting_like_a_formula_are_quoted(start: str) -> None:
    assert import_service.formula_safe(f"{start}cmd|' /C calc'!A0") == f"'{start}cmd|' /C calc'!A0"
    assert import_service.formula_safe("Anna") == "Anna"
