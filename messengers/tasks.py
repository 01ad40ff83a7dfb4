"""django-q2 entry points of the messenger layer (thin: ids in, service call)."""

from __future__ import annotations

from messengers import services


def webhook_events_apply_task() -> dict[str, int]:
    return services.webhook_events_apply_and_release()


def message_send_task(outbound_id: int) -> str:
    return services.message_send(outbound_id=outbound_id).status


def webhook_events_purge_task() -> int:
    return services.webhook_events_purge()
