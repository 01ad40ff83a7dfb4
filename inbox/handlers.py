"""The inbox's two places in the inbound pipeline (messengers.services.webhook_events):

- `department_mail`, in settings.MESSENGER_INBOUND_INTERCEPTORS: runs for every inbound event
  *before* messengers looks up or creates the sender's contact. An e-mail answering a forward
  (or coming from a department's address) is taken here, so it never becomes a contact, a
  subscriber, a keyword command or a citizen's conversation.
- `handle_inbound`, the last of settings.MESSENGER_INBOUND_HANDLERS: keyword commands ran first
  and did not handle the message, so it belongs to a conversation.
"""

from __future__ import annotations

from inbox.services import conversation_receive, forward_answer_by_mail
from messengers.adapters.base import InboundMessage as InboundEvent
from messengers.adapters.base import Provider
from messengers.models import Connection, InboundMessage

HANDLED = "inbox"


def department_mail(*, connection: Connection, event: InboundEvent) -> str | None:
    if connection.provider != Provider.EMAIL:
        return None  # only e-mail can answer a forward: nothing to look up for other messengers
    return forward_answer_by_mail(sender=event.sender, text=event.text, payload=event.payload)


def handle_inbound(*, message: InboundMessage, event: InboundEvent) -> str | None:
    conversation = conversation_receive(message=message)
    return HANDLED if conversation is not None else None
