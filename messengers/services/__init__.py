"""Writes of the messenger layer, split by subject; import from here.

connections: add, change, pause and resume, test, template sync, webhook registration.
contacts: a person's address per connection and whether it can be reached.
webhook_events: store provider events, apply them in batches, purge them, erasure tombstones.
messages: single messages (queue, paced send with retries) and their status sink.
sandbox: the simulated phones of the sandbox messenger.
mail: inbound e-mail handed over on the command line (import it from its module: it builds on
  webhook_events, which the modules above import in their own order).

Functions take keyword-only arguments and run atomically where they write more than one row.
What does not belong here: reading (messengers.selectors), provider HTTP (messengers.adapters),
the webhook views (messengers.webhooks).
"""

from messengers.services.connections import (
    EDITABLE_FIELDS,
    KEEP,
    MANAGE_PERMISSION,
    NOT_A_MANAGER,
    connection_check,
    connection_create,
    connection_create_sandbox_for_tenant,
    connection_register_webhook,
    connection_rotate_credentials,
    connection_set_status,
    connection_sync_templates,
    connection_update,
    user_can_manage_connections,
)
from messengers.services.contacts import (
    PROVIDER_UNREACHABLE,
    contact_get_or_create,
    contact_set_status,
    contacts_follow_messages,
    contacts_mark_reachable,
    contacts_mark_unreachable,
)
from messengers.services.messages import (
    SINGLE_SEND_ATTEMPTS,
    message_queue,
    message_send,
    outbound_apply_statuses,
)
from messengers.services.sandbox import (
    DEMO_LOOKALIKES,
    sandbox_demo_lookalikes_ensure,
    sandbox_mark_read,
    sandbox_person_create,
    sandbox_receive,
)
from messengers.services.webhook_events import (
    APPLY_FLAG,
    APPLY_LOCK_SECONDS,
    APPLY_TIME_BUDGET,
    DEFERRED_RETRY_FOR,
    erased_key,
    webhook_events_apply,
    webhook_events_apply_and_release,
    webhook_events_forget,
    webhook_events_purge,
    webhook_events_retry_deferred,
    webhook_events_store,
    webhook_schedule_apply,
    webhook_schedule_apply_throttled,
)

__all__ = [
    "APPLY_FLAG",
    "APPLY_LOCK_SECONDS",
    "APPLY_TIME_BUDGET",
    "DEFERRED_RETRY_FOR",
    "EDITABLE_FIELDS",
    "KEEP",
    "MANAGE_PERMISSION",
    "NOT_A_MANAGER",
    "PROVIDER_UNREACHABLE",
    "SINGLE_SEND_ATTEMPTS",
    "connection_check",
    "connection_create",
    "connection_create_sandbox_for_tenant",
    "connection_register_webhook",
    "connection_rotate_credentials",
    "connection_set_status",
    "connection_sync_templates",
    "connection_update",
    "contact_get_or_create",
    "contact_set_status",
    "contacts_follow_messages",
    "contacts_mark_reachable",
    "contacts_mark_unreachable",
    "erased_key",
    "message_queue",
    "message_send",
    "outbound_apply_statuses",
    "sandbox_mark_read",
    "sandbox_demo_lookalikes_ensure",
    "DEMO_LOOKALIKES",
    "sandbox_person_create",
    "sandbox_receive",
    "user_can_manage_connections",
    "webhook_events_apply",
    "webhook_events_apply_and_release",
    "webhook_events_forget",
    "webhook_events_purge",
    "webhook_events_retry_deferred",
    "webhook_events_store",
    "webhook_schedule_apply",
    "webhook_schedule_apply_throttled",
]
