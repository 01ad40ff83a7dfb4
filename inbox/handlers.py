"""The inbox as the last of settings.MESSENGER_INBOUND_HANDLERS: keyword commands ran first and
did not handle the message, so it belongs to a conversation."""

from __future__ import annotations

from inbox.services import conversation_receive
from messengers.adapters.base import InboundMessage as InboundEvent
from messengers.models import InboundMessage

HANDLED = "inbox"


def handle_inbound(*, message: InboundMessage, event: InboundEvent) -> str | None:
    conversation = conversation_receive(message=message)
    return HANDLED if conversation is not None else None
