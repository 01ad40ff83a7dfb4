"""GDPR erasure of a person's deliveries (settings.SUBSCRIBER_ERASURE_HOOKS): what identifies
them goes, the counts of the broadcasts stay."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q

from broadcasts.models import Broadcast, Delivery


def deliveries_erase_recipient(
    *, subscriber_id: int | None, contact_ids: list[int], since: datetime | None
) -> list[str]:
    """A person's deliveries keep their status (the broadcast's counts) but lose what identifies
    them: the provider's message id (WhatsApp's wamid is base64 of the number, Telegram's starts
    with the chat id), the provider's error text (Twilio's quotes the number) and the contact.
    The link to the erased Subscriber row stays: that row holds nothing personal any more.

    With `since` (the periodic clean-up after an erasure) only broadcasts still sending at that
    moment are looked at, where a send in flight recorded its id afterwards; that reads the
    (broadcast, subscriber) index instead of every delivery. Returns the ids it blanked."""
    whose = Q(contact_id__in=contact_ids)
    if subscriber_id is not None:
        whose |= Q(subscriber_id=subscriber_id)
    rows = Delivery.objects.filter(whose)
    if since is not None:
        sending = Broadcast.objects.filter(Q(send_finished_at__isnull=True) | Q(send_finished_at__gte=since))
        rows = rows.filter(broadcast__in=sending.values("pk"))
    rows = rows.filter(~Q(provider_message_id="") | ~Q(error_detail="") | Q(contact_id__isnull=False))
    provider_ids = list(rows.exclude(provider_message_id="").values_list("provider_message_id", flat=True))
    rows.update(provider_message_id="", error_detail="", contact=None)
    return provider_ids
