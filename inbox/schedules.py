"""Periodic jobs of the inbox, applied by `manage.py setup_schedules`."""

from __future__ import annotations

from core.schedules import Scheduled
from inbox import tasks
from tenants.tasks import every_active_tenant

SCHEDULES: list[Scheduled] = [
    every_active_tenant("inbox-purge", tasks.inbox_purge_task, minutes=24 * 60),
]
