"""Tenant-aware background work on django-q2.

The one way to queue tenant work is `enqueue_tenant_task`. It captures the schema the caller
runs in, refuses to run from `public` (a tenant task queued from a management command would
otherwise quietly run against the wrong data), queues only after the surrounding transaction
commits (so the task never runs before the rows it needs exist), and the worker runs the
task inside that schema via `run_in_schema`. Tasks of suspended tenants are skipped: the
database stays the source of truth, and the sweepers pick the work up again after the
tenant is reactivated.

Task functions take ids and plain values (JSON-safe), never model instances.

Every queued task is also recorded as waiting (tenants.TaskWait, public) until it starts. A
broadcast's senders hold their worker for up to a minute; `give_way` lets one of them hand its
worker over to a task that waits: within a fraction of a second for urgent work (the start of
a broadcast that became due), after TASK_WAIT_PATIENCE for anything else (statuses to apply,
another broadcast's senders); never to a task queued with `waits=False`. So one large
broadcast cannot hold every worker while a due alarm of another tenant waits (bench P5_BUSY).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.tasks import async_task
from django_tenants.utils import get_public_schema_name, get_tenant_model, schema_context

from core.errors import TenantContextError
from core.tenancy import connection

logger = logging.getLogger(__name__)

RUN_IN_SCHEMA = "core.tasks.run_in_schema"

# How long a waiting task is left waiting before a sender gives its worker up: urgent work, and
# anything else. A sender gives way to a task at most once per TASK_WAIT_REYIELD (one sender
# per task, not every sender at once); a row older than TASK_WAIT_STALE lost its task.
TASK_WAIT_URGENT = timedelta(seconds=0.1)
TASK_WAIT_PATIENCE = timedelta(seconds=5)
TASK_WAIT_REYIELD = timedelta(seconds=2)
TASK_WAIT_STALE = timedelta(seconds=60)


def task_path(func: Callable[..., Any] | str) -> str:
    """The dotted path a worker imports `func` by (django-q2 stores tasks and schedules by path)."""
    if isinstance(func, str):
        return func
    return f"{func.__module__}.{func.__qualname__}"


def _check_payload(kwargs: dict[str, Any]) -> None:
    # Fail in the caller, not in the worker, when a payload is not JSON-safe (Zulip's habit).
    try:
        json.dumps(kwargs)
    except TypeError as exc:
        raise TypeError(f"task arguments must be JSON-safe (pass ids, not objects): {exc}") from exc


def enqueue_tenant_task(
    func: Callable[..., Any] | str,
    /,
    *,
    task_name: str | None = None,
    group: str | None = None,
    keep_result: bool = True,
    wait_key: str | None = None,
    urgent: bool = False,
    waits: bool = True,
    **kwargs: Any,
) -> None:
    """Queue `func(**kwargs)` to run in the current tenant schema once the transaction commits.

    `wait_key` names whose work this is while it waits (see `give_way`; default: the tenant and
    the task); `urgent` lets it take a sender's worker within a fraction of a second; `waits=False`
    never takes one (housekeeping that a running sender makes unnecessary).

    `keep_result=False` for frequent housekeeping (applying webhooks, broadcast heartbeats): its
    successes are not stored as task results (failures still are). django-q's monitor prunes the
    result table on every stored success with a query over all kept results, and acknowledges a
    task only after storing it; thousands of such results an hour made it fall minutes behind,
    and tasks it had not acknowledged within Q_RETRY were handed out a second time."""
    schema_name = connection.schema_name
    if schema_name == get_public_schema_name():
        raise TenantContextError(
            f"refusing to queue tenant task {task_path(func)} from the public schema; "
            "enter the tenant first (schema_context / tenant_context)"
        )
    path = task_path(func)
    _check_payload(kwargs)
    q_options: dict[str, Any] = {"task_name": task_name or f"{schema_name}:{path.rsplit('.', 1)[-1]}"}
    if group:
        q_options["group"] = group
    if not keep_result:
        q_options["save"] = False

    key = wait_key or f"{schema_name}:{path.rsplit('.', 1)[-1]}"

    def _push() -> None:
        wait_id = _record_wait(key, urgent) if waits else None
        async_task(RUN_IN_SCHEMA, schema_name, path, kwargs, wait_id, q_options=q_options)

    transaction.on_commit(_push)


def _task_wait_model() -> Any:
    # the model lives with the other public work index (settings.TASK_WAIT_MODEL); core imports
    # no app of ours
    return apps.get_model(settings.TASK_WAIT_MODEL)


def _record_wait(key: str, urgent: bool) -> str | None:
    waits = _task_wait_model().objects
    wait_id = uuid.uuid4()
    try:
        # the table is in public, which is on every tenant's search path
        waits.create(id=wait_id, key=key[:200], urgent=urgent, queued_at=timezone.now())
    except DatabaseError:  # queue the task all the same: its sender just will not give way to it
        logger.warning("could not record task %s as waiting", key, exc_info=True)
        return None
    return str(wait_id)


def tasks_run_inline() -> bool:
    """Whether queued tasks run inline in the caller (Q_SYNC: the tests, a one-process shell).
    Then there is no worker to hand over and nobody runs a later tick: nothing gives way."""
    return bool(settings.Q_CLUSTER.get("sync"))


def give_way(own_key: str) -> str | None:
    """For a long-running task (a broadcast's sender), between two pieces of its work: mark the
    oldest task that has waited long enough (urgent or not, see the constants above) and whose
    work is not the caller's own, and return its key; the caller then ends and queues itself
    again behind it. None: nobody needs the worker. One caller gives way per waiting task (the
    row lock and `yielded_at`), so two senders do not both stop for one task."""
    waits = _task_wait_model().objects
    now = timezone.now()
    table = f'"{get_public_schema_name()}"."{waits.model._meta.db_table}"'
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET yielded_at = %(now)s WHERE id = ("  # noqa: S608 - names from the model
            f"SELECT id FROM {table} WHERE key <> %(own)s AND queued_at > %(stale)s"
            " AND (yielded_at IS NULL OR yielded_at < %(reyield)s)"
            " AND queued_at <= CASE WHEN urgent THEN %(urgent)s ELSE %(patient)s END"
            " ORDER BY urgent DESC, queued_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING key",
            {
                "now": now,
                "own": own_key,
                "stale": now - TASK_WAIT_STALE,
                "reyield": now - TASK_WAIT_REYIELD,
                "urgent": now - TASK_WAIT_URGENT,
                "patient": now - TASK_WAIT_PATIENCE,
            },
        )
        row = cursor.fetchone()
    return str(row[0]) if row else None


def task_waits_purge() -> int:
    """Rows of tasks that were lost before they started (the dispatcher, now and then)."""
    waits = _task_wait_model().objects
    deleted, _ = waits.filter(queued_at__lt=timezone.now() - TASK_WAIT_STALE).delete()
    return deleted


def run_in_schema(schema_name: str, func_path: str, kwargs: dict[str, Any], wait_id: str | None = None) -> Any:
    """Worker entry point: load the tenant, skip it if suspended, run the task in its schema."""
    waits = _task_wait_model().objects
    with schema_context(get_public_schema_name()):
        if wait_id:
            waits.filter(pk=wait_id).delete()
        tenant = get_tenant_model().objects.filter(schema_name=schema_name).first()
    if tenant is None:
        logger.warning("task %s for unknown schema %s dropped", func_path, schema_name)
        return {"skipped": "unknown-tenant"}
    if not tenant.is_active:
        logger.info("task %s skipped: tenant %s is suspended", func_path, schema_name)
        return {"skipped": "suspended"}
    func = import_string(func_path)
    started = time.monotonic()
    with schema_context(schema_name):
        connection.set_tenant(tenant)
        try:
            return func(**kwargs)
        finally:
            logger.debug("task %s took %.3fs", func_path, time.monotonic() - started)
