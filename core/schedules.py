"""Periodic jobs, declared in code and applied by `manage.py setup_schedules` (idempotent).

django-q2 schedules have minute resolution; work that must react within seconds (due
broadcasts, webhook events) is driven by the dispatcher process instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PREFIX = "mnl:"


@dataclass(frozen=True)
class Scheduled:
    name: str
    func: str
    minutes: int
    kwargs: dict[str, Any] = field(default_factory=dict)


SCHEDULES: list[Scheduled] = [
    Scheduled("tenant-rollups", "tenants.tasks.tenant_rollup_all_task", minutes=5),
    Scheduled(
        "subscribers-housekeeping",
        "core.tasks.for_each_active_tenant",
        minutes=15,
        kwargs={"func_path": "subscribers.tasks.subscribers_housekeeping_task"},
    ),
    Scheduled(
        "webhook-events-purge",
        "core.tasks.for_each_active_tenant",
        minutes=24 * 60,
        kwargs={"func_path": "messengers.tasks.webhook_events_purge_task"},
    ),
]
