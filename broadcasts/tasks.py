"""django-q2 entry points for broadcasts (ids in, service call).

Service modules are imported as modules (not names): they reference these tasks in turn
(`tasks.broadcast_start_task`), and Python resolves such a submodule cycle at call time."""

from __future__ import annotations

from broadcasts.services import notifications, sending


def broadcast_start_task(broadcast_id: int) -> str:
    return sending.broadcast_start(broadcast_id=broadcast_id)


def broadcast_send_task(broadcast_id: int, token: str) -> dict[str, int]:
    return sending.broadcast_send(broadcast_id=broadcast_id, token=token)


def broadcast_tick_task(broadcast_id: int) -> str:
    return sending.broadcast_tick(broadcast_id=broadcast_id)


def broadcast_notify_approvers_task(broadcast_id: int, user_ids: list[int]) -> int:
    return notifications.broadcast_notify_approvers(broadcast_id=broadcast_id, user_ids=user_ids)


def broadcast_notify_author_task(broadcast_id: int, user_id: int, comment: str) -> int:
    return notifications.broadcast_notify_author(broadcast_id=broadcast_id, user_id=user_id, comment=comment)
