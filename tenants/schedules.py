"""Periodic jobs of the platform itself, applied by `manage.py setup_schedules`."""

from __future__ import annotations

from core.schedules import Scheduled
from tenants import tasks

SCHEDULES: list[Scheduled] = [
    Scheduled("tenant-rollups", tasks.tenant_rollup_all_task, minutes=5),
]
