"""Periodic jobs of analytics, applied by `manage.py setup_schedules`."""

from __future__ import annotations

from analytics import tasks
from core.schedules import Scheduled

SCHEDULES: list[Scheduled] = [
    Scheduled("tenant-rollups", tasks.tenant_rollup_all_task, minutes=5),
    # every roll-up of settings.ANALYTICS_ROLLUPS folds what changed, in every active tenant
    Scheduled("analytics-fold", tasks.analytics_fold_all_task, minutes=5),
]
