"""The built-in sandbox messenger: "phones" are a page in the tenant admin.

Sending writes a chat bubble and reports `sent` and `delivered` through the normal webhook
pipeline (messengers.services.webhook_events_store); the simulator page reports `read` when it
shows the bubble, and what a simulated person types enters that same pipeline. So everything
downstream of the webhook layer behaves exactly as with a real provider.
"""

from __future__ import annotations

import secrets

from django.db import connection as django_connection
from django.utils import timezone
from django_tenants.utils import schema_context

from messengers.adapters.base import (
    Adapter,
    CheckResult,
    ConnectionConfig,
    ErrorKind,
    OutgoingMessage,
    Provider,
    ProviderError,
    SendResult,
    StatusEvent,
    WebhookEvent,
    WebhookParseError,
    WebhookRequest,
)
from messengers.models import Connection, Contact, SandboxMessage
from messengers.services.webhook_events import webhook_events_store


class SandboxAdapter(Adapter):
    provider = Provider.SANDBOX

    def __init__(self, config: ConnectionConfig) -> None:
        super().__init__(config)
        # sends may run in a worker thread (send_async): remember which tenant we belong to
        self.schema_name: str = django_connection.schema_name  # type: ignore[attr-defined]

    def send(self, message: OutgoingMessage) -> SendResult:
        with schema_context(self.schema_name):
            connection = Connection.objects.get(pk=int(self.config.connection_id or 0))
            contact = Contact.objects.filter(connection=connection, address=message.to).only("status").first()
            if contact is None:
                raise ProviderError(ErrorKind.NOT_ON_MESSENGER, "no simulated phone has this number", code="404")
            if contact.status == Contact.Status.BLOCKED:
                raise ProviderError(ErrorKind.BLOCKED, "the simulated person blocked this sender", code="403")
            message_id = f"sbx-{secrets.token_hex(10)}"
            text = message.text
            if message.template is not None:
                params = ", ".join(message.template.body_params)
                text = text or f"[{message.template.name}] {params}"
            SandboxMessage.objects.create(
                connection=connection,
                address=message.to,
                direction=SandboxMessage.Direction.TO_PHONE,
                text=text,
                media_url=message.media.url if message.media else "",
                media_kind=message.media.kind if message.media else "",
                buttons=[{"title": b.title, "url": b.url, "payload": b.payload} for b in message.buttons],
                provider_message_id=message_id,
            )
            now = timezone.now()
            webhook_events_store(
                connection=connection,
                events=[
                    StatusEvent(provider_message_id=message_id, status="sent", at=now, recipient=message.to),
                    StatusEvent(provider_message_id=message_id, status="delivered", at=now, recipient=message.to),
                ],
            )
        return SendResult(provider_message_id=message_id, provider_status="accepted")

    def verify_webhook(self, request: WebhookRequest) -> bool:
        return False  # the sandbox has no HTTP webhooks; its events are stored in-process

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        raise WebhookParseError("the sandbox does not receive HTTP webhooks")

    def check_credentials(self) -> CheckResult:
        return CheckResult(ok=True, detail="Sandbox: simulated phones in the admin, no credentials needed.")
