"""Periodic jobs of the messenger layer, applied by `manage.py setup_schedules`."""

from __future__ import annotations

from core.schedules import Scheduled
from messengers import tasks
from tenants.tasks import every_active_tenant

SCHEDULES: list[Scheduled] = [
    every_active_tenant("webhook-events-purge", tasks.webhook_events_purge_task, minutes=24 * 60),
]
