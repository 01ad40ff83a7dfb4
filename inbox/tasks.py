"""django-q2 entry points of the inbox (thin: ids in, service call)."""

from __future__ import annotations

# the service module, not names: it imports this module to queue these tasks
from inbox import services


def forward_send_task(forward_id: int) -> int:
    return services.forward_send(forward_id=forward_id)


def inbox_purge_task() -> int:
    return services.inbox_purge()
