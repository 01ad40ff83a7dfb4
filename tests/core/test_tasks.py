from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from django.conf import settings
from django_tenants.utils import schema_context

from accounts.models import AuditEvent
from core.errors import TenantContextError
from core.tasks import enqueue_tenant_task, run_in_schema
from core.tenancy import connection
from tenants.models import Tenant
from tests.conftest import in_tenant

PROBE = "tests.core.tasks_probe.record_schema"


def test_refuses_to_queue_tenant_work_from_public(public: Any) -> None:
    with pytest.raises(TenantContextError, match="public schema"):
        enqueue_tenant_task(PROBE, marker="x")


def test_rejects_payloads_that_are_not_json(tenant: Tenant) -> None:
    with pytest.raises(TypeError, match="JSON-safe"):
        enqueue_tenant_task(PROBE, marker=object())


def test_queues_only_after_commit_and_runs_in_the_callers_schema(
    tenant: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        enqueue_tenant_task(PROBE, marker="after-commit")
        assert not AuditEvent.objects.filter(action="test.probe").exists()
    assert len(callbacks) == 1
    connection.set_schema_to_public()  # the worker starts in public, whatever the caller did
    callbacks[0]()  # Q_CLUSTER sync: runs the task inline, as a worker would
    with in_tenant(tenant):
        event = AuditEvent.objects.get(action="test.probe")
    assert event.details["marker"] == "after-commit" and event.details["schema"] == tenant.schema_name


def test_tasks_of_a_suspended_tenant_are_skipped(tenant: Tenant) -> None:
    tenant.status = Tenant.Status.SUSPENDED
    tenant.save(update_fields=["status"])
    result = run_in_schema(tenant.schema_name, PROBE, {"marker": "never"})
    assert result == {"skipped": "suspended"}
    assert not AuditEvent.objects.filter(action="test.probe").exists()


def test_tasks_for_an_unknown_schema_are_dropped(public: Any) -> None:
    assert run_in_schema("no_such_tenant", PROBE, {"marker": "x"}) == {"skipped": "unknown-tenant"}


def _worker_env() -> dict[str, str]:
    db = settings.DATABASES["default"]
    host = str(db["HOST"]).replace("/", "%2F")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    url = f"postgres://{db['USER']}@{host}{port}/{db['NAME']}"
    return {
        **os.environ,
        "DATABASE_URL": url,
        "Q_SYNC": "0",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "Q_WORKERS": "1",
    }


@pytest.mark.worker
def test_one_worker_runs_interleaved_tasks_of_two_tenants_each_in_its_own_schema(
    committed_tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_q.conf import Conf

    # this test process queues for real (tests otherwise run tasks inline); one worker runs them
    monkeypatch.setattr(Conf, "SYNC", False)
    first, second = committed_tenant("Stadt Eins"), committed_tenant("Stadt Zwei")
    expected: dict[str, list[str]] = {first.schema_name: [], second.schema_name: []}
    for i in range(6):
        for tenant in (first, second):
            with schema_context(tenant.schema_name):
                marker = f"{tenant.schema_name}-{i}"
                enqueue_tenant_task(PROBE, marker=marker)  # autocommit: queued at once
                expected[tenant.schema_name].append(marker)
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=settings.BASE_DIR,
        env=_worker_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        seen: dict[str, list[dict[str, str]]] = {}
        while time.monotonic() < deadline:
            for tenant in (first, second):
                with schema_context(tenant.schema_name):
                    seen[tenant.schema_name] = list(
                        AuditEvent.objects.filter(action="test.probe").order_by("id").values_list("details", flat=True)
                    )
            if all(len(seen[s]) == 6 for s in expected):
                break
            time.sleep(0.3)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            _, err = worker.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            _, err = worker.communicate(timeout=10)
    for schema, markers in expected.items():
        assert sorted(d["marker"] for d in seen[schema]) == sorted(markers), err.decode()[-2000:]
        assert {d["schema"] for d in seen[schema]} == {schema}
        assert {d["pid"] for d in seen[schema]} != {os.getpid()}  # the worker ran them, not this process


def test_frequent_tasks_can_leave_out_their_successful_results(
    tenant: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    """django-q's monitor prunes its result table on every stored success and acknowledges a task
    only after storing it: frequent housekeeping must not keep results (django-q still stores
    failures: it skips only successes of tasks queued with save=False)."""
    from django_q.models import Task

    with django_capture_on_commit_callbacks(execute=True):
        enqueue_tenant_task(PROBE, task_name="kept", marker="kept")
        enqueue_tenant_task(PROBE, task_name="not-kept", marker="not-kept", keep_result=False)
    with schema_context("public"):
        assert list(Task.objects.filter(name__in=["kept", "not-kept"]).values_list("name", "success")) == [
            ("kept", True)
        ]
    assert AuditEvent.objects.filter(action="test.probe", details__marker="not-kept").exists()


def test_the_webhook_apply_task_keeps_no_successful_results(
    tenant: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    from django.core.cache import cache
    from django_q.models import Task

    from messengers.services import APPLY_FLAG, webhook_schedule_apply

    cache.delete(APPLY_FLAG)
    with django_capture_on_commit_callbacks(execute=True):
        webhook_schedule_apply()
    with schema_context("public"):
        assert not Task.objects.filter(name=f"{tenant.schema_name}:apply-events").exists()
