"""django-q2 entry points of the messenger layer (thin: ids in, service call)."""

from __future__ import annotations

# service modules, not names: they import this module to queue these tasks (see their hops)
from messengers.outgoing import services as outgoing
from messengers.services import messages, webhook_events


def webhook_events_apply_task() -> dict[str, int]:
    return webhook_events.webhook_events_apply_and_release()


def message_send_task(outbound_id: int) -> str:
    return messages.message_send(outbound_id=outbound_id).status


def webhook_events_purge_task() -> int:
    return webhook_events.webhook_events_purge()


def webhook_delivery_task(delivery_id: int) -> str:
    return outgoing.webhook_delivery_attempt(delivery_id=delivery_id)


def webhook_deliveries_retry_due_task() -> int:
    return outgoing.webhook_deliveries_retry_due()


def webhook_log_purge_task() -> int:
    return outgoing.webhook_log_purge()


def webhook_endpoint_disabled_notify_task(endpoint_id: int) -> int:
    return outgoing.webhook_endpoint_disabled_notify(endpoint_id=endpoint_id)
