"""Inbound e-mail handed over on the command line (`manage.py email_inbound`): the same parsing
and storing as the signed webhook, without the HTTP hop, for an MTA on the platform's own host.

Whoever can run manage.py holds the database and the credential keys anyway, so no signature is
asked for here; the connection must still have inbound mail switched on (an inbound secret),
so that one switch decides for both ways in."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django_tenants.utils import schema_context

from messengers import selectors
from messengers.adapters.base import Provider, WebhookParseError, WebhookRequest
from messengers.adapters.email import EmailAdapter
from messengers.services.webhook_events import webhook_events_store


class MailRefusedError(Exception):
    """The message cannot be taken; `reason` says why (what the MTA's bounce shows)."""

    def __init__(self, reason: str, *, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # "route" (unknown address), "config" (no inbound), "data" (malformed)


@dataclass(frozen=True)
class MailReceived:
    schema_name: str
    stored: int  # 0: a replay, or automatic mail (bounce, out-of-office) that was dropped


def mail_receive(*, route_key: str, raw: bytes) -> MailReceived:
    """Parse a raw message for the e-mail connection behind `route_key` and store its event
    (a replay of the same Message-ID is a no-op). Raises MailRefusedError."""
    route = selectors.route_by_key(Provider.EMAIL, route_key)
    if route is None:
        raise MailRefusedError(f"no e-mail connection with route {route_key!r}", kind="route")
    if len(raw) > settings.EMAIL_INBOUND_MAX_BYTES:
        raise MailRefusedError(f"message larger than {settings.EMAIL_INBOUND_MAX_BYTES} bytes", kind="data")
    with schema_context(route.schema_name):
        found = selectors.connection_adapter_cached(route.schema_name, route.connection_id)
        if found is None:
            raise MailRefusedError(f"no e-mail connection with route {route_key!r}", kind="route")
        connection, adapter = found
        if not isinstance(adapter, EmailAdapter) or not adapter.receives_mail:
            raise MailRefusedError("inbound mail is off for this connection (no inbound secret)", kind="config")
        try:
            events = adapter.parse_webhook(WebhookRequest(method="POST", url="", headers={}, body=raw))
        except WebhookParseError as exc:
            raise MailRefusedError(f"malformed message: {exc}", kind="data") from None
        stored = webhook_events_store(connection=connection, events=events)
    return MailReceived(schema_name=route.schema_name, stored=stored)
