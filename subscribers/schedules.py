"""Periodic jobs of subscribers, applied by `manage.py setup_schedules`."""

from __future__ import annotations

from core.schedules import Scheduled
from subscribers import tasks
from tenants.tasks import every_active_tenant

SCHEDULES: list[Scheduled] = [
    every_active_tenant("subscribers-housekeeping", tasks.subscribers_housekeeping_task, minutes=15),
]
