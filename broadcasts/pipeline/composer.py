"""What each recipient gets: the broadcast's text in their language (or the fallback), its
tracked links (one token per recipient or per broadcast), buttons, media, the WhatsApp template
outside the 24-hour window, and for e-mail the unsubscribe and preferences URLs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from broadcasts.headlines import headline
from broadcasts.links import link_token
from broadcasts.models import Broadcast, BroadcastVariant, TrackedLink
from broadcasts.pipeline.rows import ClaimedRow
from messengers.adapters.base import Button, Media, OutgoingMessage, Provider, TemplateRef
from subscribers import selectors as subscriber_selectors
from subscribers.models import Subscriber
from tenants.selectors import tenant_public_base_url


@dataclass
class Composer:
    """Builds each recipient's OutgoingMessage from the broadcast, cheaply (100,000 times)."""

    broadcast: Broadcast
    schema: str
    base_url: str  # https://stuttgart.example.org — the tenant's primary domain
    per_recipient_links: bool
    variants: dict[str, BroadcastVariant] = field(default_factory=dict)
    links: list[TrackedLink] = field(default_factory=list)
    fallback_language: str = "de"
    subjects: dict[str, str] = field(default_factory=dict)  # language → headline, filled on first use
    media: Media | None = None
    channel_ids: list[int] = field(default_factory=list)
    email_urls: dict[int, tuple[str, str]] = field(default_factory=dict)  # subscriber → (unsubscribe, prefs)

    @classmethod
    def build(cls, broadcast: Broadcast, tenant: Any) -> Composer:
        variants = {v.language: v for v in broadcast.variants.all()}
        fallback = tenant.default_language if tenant.default_language in variants else next(iter(variants), "de")
        base_url = tenant_public_base_url()
        media = None
        if broadcast.media:
            media = Media(
                url=f"{base_url}{broadcast.media.url}", kind="video" if broadcast.media_kind == "video" else "image"
            )
        return cls(
            broadcast=broadcast,
            schema=tenant.schema_name,
            base_url=base_url,
            per_recipient_links=tenant.link_tracking == "per_recipient",
            variants=variants,
            links=list(broadcast.links.order_by("position")),
            fallback_language=fallback,
            media=media,
            channel_ids=list(broadcast.channels.values_list("pk", flat=True)),
        )

    def _track(self, text: str, delivery_id: int) -> str:
        for link in self.links:
            if link.url in text:
                token = link_token(self.schema, link.pk, delivery_id if self.per_recipient_links else 0)
                text = text.replace(link.url, f"{self.base_url}/l/{token}")
        return text

    def _subject(self, variant: BroadcastVariant | None) -> str:
        """The public headline, once per language: the internal title is the team's working name
        ("Entwurf Feinstaub v2") and never becomes a subject."""
        if variant is None:
            return ""
        if variant.language not in self.subjects:
            self.subjects[variant.language] = headline(subject=variant.subject, body=variant.body)[:200]
        return self.subjects[variant.language]

    def message(self, row: ClaimedRow, provider: Provider) -> OutgoingMessage:
        variant = self.variants.get(row.language) or self.variants.get(self.fallback_language)
        body = variant.body if variant else ""
        text = self._track(body, row.delivery_id)
        buttons = tuple(
            Button(title=str(b.get("title", ""))[:20], url=self._track(str(b.get("url", "")), row.delivery_id))
            for b in (self.broadcast.buttons or [])
            if b.get("url")
        )
        media = self.media
        template = None
        if row.use_template and provider == Provider.WHATSAPP and self.broadcast.wa_template_name:
            template = TemplateRef(
                name=self.broadcast.wa_template_name,
                language=self.broadcast.wa_template_language or row.language.split("-")[0],
                body_params=tuple(self._track(p, row.delivery_id) for p in self.broadcast.wa_template_params),
                header_media=media,
            )
        unsubscribe, preferences = self.email_urls.get(row.subscriber_id or 0, ("", ""))
        if provider == Provider.EMAIL and preferences:
            text = f"{text}\n\n--\n{preferences}"
        return OutgoingMessage(
            to=row.address,
            text=text,
            media=media if template is None else None,
            buttons=buttons,
            template=template,
            subject=self._subject(variant),
            reference=f"d{row.delivery_id}",
            unsubscribe_url=unsubscribe,
        )


def email_urls(subscriber_ids: list[int]) -> dict[int, tuple[str, str]]:
    """Unsubscribe and preferences URLs of these subscribers (Composer.email_urls)."""
    urls: dict[int, tuple[str, str]] = {}
    for subscriber in Subscriber.objects.filter(pk__in=subscriber_ids):
        urls[subscriber.pk] = (
            subscriber_selectors.unsubscribe_url(subscriber),
            subscriber_selectors.preferences_url(subscriber),
        )
    return urls
