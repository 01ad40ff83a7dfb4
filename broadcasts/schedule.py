"""When a broadcast may start, and the public DueWork index that makes it start then.

Quiet hours and the due time are pure functions (the admin's send plan and the tests use them
too); `due_work_set` / `due_work_clear` keep this tenant's rows in the public DueWork index that
the dispatcher (broadcasts.dispatcher) polls. Writing a broadcast's status is not done here
(broadcasts.services).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from broadcasts.models import Broadcast
from channels.models import Priority
from core.tenancy import connection as db
from tenants.models import DueWork


def current_tenant() -> Any:
    """The tenant whose schema this connection is in."""
    return db.tenant


def in_quiet_hours(local: datetime, start: dtime | None, end: dtime | None) -> bool:
    if start is None or end is None or start == end:
        return False
    now = local.time()
    if start < end:
        return start <= now < end
    return now >= start or now < end  # overnight, e.g. 22:00–07:00


def quiet_hours_end(local: datetime, start: dtime, end: dtime) -> datetime:
    candidate = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate


def due_time(broadcast: Broadcast, tenant: Any, requested: datetime | None = None) -> datetime:
    """When the broadcast may start: its scheduled time (or now), moved past the tenant's quiet
    hours for normal priority. Alerts are never held."""
    at = requested or broadcast.scheduled_at or timezone.now()
    if broadcast.priority == Priority.ALERT:
        return at
    zone = ZoneInfo(tenant.timezone)
    local = at.astimezone(zone)
    if in_quiet_hours(local, tenant.quiet_hours_start, tenant.quiet_hours_end):
        return quiet_hours_end(local, tenant.quiet_hours_start, tenant.quiet_hours_end).astimezone(zone)
    return at


def due_work_set(kind: str, object_id: int, at: datetime) -> None:
    """Make `kind` work on this object due at `at` (again, if it was queued already)."""
    tenant = current_tenant()
    with schema_context(get_public_schema_name()):
        DueWork.objects.update_or_create(
            tenant_id=tenant.pk, kind=kind, object_id=object_id, defaults={"due_at": at, "enqueued_at": None}
        )


def due_work_clear(kind: str, object_id: int) -> None:
    tenant = current_tenant()
    with schema_context(get_public_schema_name()):
        DueWork.objects.filter(tenant_id=tenant.pk, kind=kind, object_id=object_id).delete()
