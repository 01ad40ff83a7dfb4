"""Periodic jobs of analytics, applied by `manage.py setup_schedules`."""

from __future__ import annotations

from analytics import tasks
from core.schedules import Scheduled

SCHEDULES: list[Scheduled] = [
    Scheduled("tenant-rollups", tasks.tenant_rollup_all_task, minutes=5),
]
