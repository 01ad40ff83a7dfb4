"""django-q2 entry points for broadcasts (ids in, service call)."""

from __future__ import annotations

from broadcasts import services


def broadcast_start_task(broadcast_id: int) -> str:
    return services.broadcast_start(broadcast_id=broadcast_id)


def broadcast_send_task(broadcast_id: int, token: str) -> dict[str, int]:
    return services.broadcast_send(broadcast_id=broadcast_id, token=token)


def broadcast_tick_task(broadcast_id: int) -> str:
    return services.broadcast_tick(broadcast_id=broadcast_id)
