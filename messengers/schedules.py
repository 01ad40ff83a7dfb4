"""Periodic jobs of the messenger layer, applied by `manage.py setup_schedules`."""

from __future__ import annotations

from core.schedules import Scheduled
from messengers import tasks
from tenants.tasks import every_active_tenant

SCHEDULES: list[Scheduled] = [
    every_active_tenant("webhook-events-purge", tasks.webhook_events_purge_task, minutes=24 * 60),
    # outgoing webhooks: retries that are due (the back-off starts at a minute), and the log's purge
    every_active_tenant("outgoing-webhooks-retry", tasks.webhook_deliveries_retry_due_task, minutes=1),
    every_active_tenant("outgoing-webhooks-purge", tasks.webhook_log_purge_task, minutes=24 * 60),
]
