"""Periodic jobs of the apps below tenants (accounts cannot name tenants' scheduling helper),
applied by `manage.py setup_schedules`."""

from __future__ import annotations

from accounts import tasks as accounts_tasks
from core.schedules import Scheduled
from tenants.tasks import every_active_tenant

SCHEDULES: list[Scheduled] = [
    every_active_tenant("api-idempotency-purge", accounts_tasks.idempotency_purge_task, minutes=60),
]
