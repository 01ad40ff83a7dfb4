"""Outgoing webhooks: the tenant's own systems are told about inbound replies, subscription
changes, broadcast states and alarm states (models, services, selectors, transport, signature).
The admin pages are in messengers.outgoing.admin; the tasks in messengers.tasks."""
