"""The platform's way to run periodic tenant work: one schedule in public that queues a task in
every active tenant (django-q2 entry point)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django_tenants.utils import schema_context

from core.schedules import Scheduled
from core.tasks import enqueue_tenant_task, task_path
from tenants.selectors import tenant_list_active


def for_each_active_tenant(func_path: Callable[..., Any] | str, **kwargs: Any) -> int:
    """Scheduled helper (runs in public): queue the task `func_path` (a task function, or its dotted
    path as a schedule stores it) once per active tenant. Returns the count."""
    count = 0
    for tenant in tenant_list_active():
        with schema_context(tenant.schema_name):
            enqueue_tenant_task(func_path, **kwargs)
            count += 1
    return count


def every_active_tenant(name: str, task: Callable[..., Any], *, minutes: int) -> Scheduled:
    """A schedule (for an app's `schedules.py`) that runs `task` in every active tenant."""
    return Scheduled(name, for_each_active_tenant, minutes=minutes, kwargs={"func_path": task_path(task)})
