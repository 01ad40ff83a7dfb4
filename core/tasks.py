"""Tenant-aware background work on django-q2.

The one way to queue tenant work is `enqueue_tenant_task`. It captures the schema the caller
runs in, refuses to run from `public` (a tenant task queued from a management command would
otherwise quietly run against the wrong data), queues only after the surrounding transaction
commits (so the task never runs before the rows it needs exist), and the worker runs the
task inside that schema via `run_in_schema`. Tasks of suspended tenants are skipped: the
database stays the source of truth, and the sweepers pick the work up again after the
tenant is reactivated.

Task functions take ids and plain values (JSON-safe), never model instances.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils.module_loading import import_string
from django_q.tasks import async_task
from django_tenants.utils import get_public_schema_name, get_tenant_model, schema_context

from core.errors import TenantContextError
from core.tenancy import connection

logger = logging.getLogger(__name__)

RUN_IN_SCHEMA = "core.tasks.run_in_schema"


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
    **kwargs: Any,
) -> None:
    """Queue `func(**kwargs)` to run in the current tenant schema once the transaction commits.

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

    def _push() -> None:
        async_task(RUN_IN_SCHEMA, schema_name, path, kwargs, q_options=q_options)

    transaction.on_commit(_push)


def run_in_schema(schema_name: str, func_path: str, kwargs: dict[str, Any]) -> Any:
    """Worker entry point: load the tenant, skip it if suspended, run the task in its schema."""
    with schema_context(get_public_schema_name()):
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
