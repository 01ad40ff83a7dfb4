"""Double opt-in for e-mail: the web form asks, the click on the mailed link consents.

Until the click nothing is sent but the confirmation mail, the subscriptions wait as "pending",
and the ledger holds nothing; the click records the opt-in (when the form was sent) and the
confirmation (the click, with the token's hash as evidence). Unconfirmed requests are purged
when they expire, address included.

The form never reveals whether an address is known: a known address gets the same page and a
mail telling its owner there is nothing to do. Mails to one address are capped per day so the
form cannot be used to flood someone's inbox (counted per inbox: +tags and Gmail's dots do not
open new ones).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.http import int_to_base36
from django.utils.translation import gettext_lazy

from channels.models import Channel
from core.errors import ApplicationError
from core.signing import tenant_signature
from core.tasks import enqueue_tenant_task
from core.tenancy import connection as db
from messengers import selectors as messenger_selectors
from messengers.adapters import get_adapter
from messengers.adapters.base import OutgoingMessage, Provider, ProviderError
from messengers.models import Connection, Contact
from messengers.services import contact_get_or_create
from subscribers import links, selectors, tasks, texts
from subscribers.models import ConsentEvent, EmailConfirmation, Language, Source, Subscriber, Subscription
from subscribers.services.consent import consent_record, consent_text_current
from subscribers.services.subscriptions import contact_reactivate, subscriber_for_contact

logger = logging.getLogger(__name__)

# Shown to citizens on the subscribe page, hence translated.
EMAIL_INVALID = gettext_lazy("Please enter a valid e-mail address.")
EMAIL_NO_CHANNELS = gettext_lazy("Please choose at least one topic that is available by e-mail.")
CONFIRMATION_DAYS = 7
MAILS_PER_ADDRESS_PER_DAY = 3


def _normalise_email(value: str) -> str:
    email = value.strip()
    try:
        validate_email(email)
    except ValidationError:
        raise ApplicationError(str(EMAIL_INVALID)) from None
    if len(email) > 254:
        raise ApplicationError(str(EMAIL_INVALID))
    return email.lower()


# Google documents that dots in a gmail.com name do not matter and that googlemail.com is the
# same mailbox; other providers' dots do matter, so only these two domains drop them.
DOTLESS_MAILBOX_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def _mailbox(email: str) -> str:
    """Whose inbox a mail to `email` lands in, for counting only (mail always goes to the address
    as typed): the domain in its ASCII form, the name without a +tag (RFC 5233 sub-addressing,
    which most providers deliver to the plain name) and, at Gmail, without dots. Otherwise one
    inbox could be flooded through victim+1@, victim+2@, … each with a cap of its own."""
    local, _, domain = email.lower().rpartition("@")
    domain = domain.rstrip(".")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        pass  # validate_email let it through; count it as written
    name = local.split("+", 1)[0] or local
    if domain in DOTLESS_MAILBOX_DOMAINS:
        domain = DOTLESS_MAILBOX_DOMAINS[domain]
        name = name.replace(".", "")
    return f"{name}@{domain}"


def _address_allowance(email: str) -> bool:
    """Whether another mail to this address's inbox is allowed today (tenant-scoped cache counter)."""
    key = "subscribers:mails-to:" + hashlib.sha256(_mailbox(email).encode()).hexdigest()[:32]
    cache.add(key, 0, timeout=24 * 3600)
    try:
        count = cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=24 * 3600)
        count = 1
    return count <= MAILS_PER_ADDRESS_PER_DAY


def _token(confirmation: EmailConfirmation) -> str:
    """Recomputable from the row, so the plain token is never stored (only its hash) and never
    travels through the task queue."""
    value = f"{confirmation.pk}:{confirmation.created_at.isoformat()}"
    signature = tenant_signature(value, purpose="subscribers.email-confirmation", schema=db.schema_name)
    return f"{int_to_base36(confirmation.pk)}.{signature}"


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def email_subscription_request(
    *,
    email: str,
    channel_ids: list[int],
    language: str,
    source: str = Source.WEB_FORM,
    source_detail: str = "",
) -> None:
    """Handle the web form. Returns nothing on purpose: the caller must not learn whether the
    address was known."""
    address = _normalise_email(email)
    connection = selectors.email_connection_for(channel_ids)
    if connection is None:
        raise ApplicationError(str(EMAIL_NO_CHANNELS))
    channels = list(
        Channel.objects.filter(pk__in=channel_ids, is_public=True, is_active=True, connections=connection).order_by(
            "position", "name"
        )
    )
    if not channels:
        raise ApplicationError(str(EMAIL_NO_CHANNELS))
    language = language if language in Language.values else Language.DE
    if not _address_allowance(address):
        logger.info("double opt-in mail to one address capped for today")
        return
    contact = contact_get_or_create(connection=connection, address=address)
    subscriber = subscriber_for_contact(contact=contact, language=language)
    assert subscriber is not None
    active = set(
        Subscription.objects.filter(
            subscriber=subscriber, channel__in=channels, status=Subscription.Status.ACTIVE
        ).values_list("channel_id", flat=True)
    )
    missing = [c for c in channels if c.pk not in active]
    if not missing:
        enqueue_tenant_task(tasks.email_known_notice_send_task, subscriber_id=subscriber.pk, contact_id=contact.pk)
        return
    now = timezone.now()
    for channel in missing:
        Subscription.objects.update_or_create(
            subscriber=subscriber, channel=channel,
            defaults={"status": Subscription.Status.PENDING, "source": source, "source_detail": source_detail[:120],
                      "subscribed_at": now, "confirmed_at": None, "unsubscribed_at": None},
        )  # fmt: skip
    confirmation = EmailConfirmation.objects.create(
        token_sha256=f"pending-{contact.pk}-{now.timestamp()}"[:64], subscriber=subscriber, contact=contact,
        channel_ids=[c.pk for c in missing], source=source, source_detail=source_detail[:120], language=language,
        expires_at=now + timedelta(days=CONFIRMATION_DAYS),
    )  # fmt: skip
    confirmation.token_sha256 = _sha256(_token(confirmation))
    confirmation.save(update_fields=["token_sha256"])
    enqueue_tenant_task(tasks.email_confirmation_send_task, confirmation_id=confirmation.pk)
    email_confirmations_purge_expired()


def _send(connection: Connection, *, to: str, subject: str, body: str, reference: str) -> bool:
    """Through the tenant's e-mail connection (its SMTP server and sender), or Django's mail
    settings when the connection has no SMTP server of its own."""
    credentials = messenger_selectors.connection_credentials(connection)
    sandbox = connection.provider == Provider.SANDBOX  # the demo's e-mail look-alike: a simulator bubble
    if not sandbox and not credentials.get("host"):
        sender = connection.external_id or settings.DEFAULT_FROM_EMAIL
        return send_mail(subject, body, sender, [to], fail_silently=False) == 1
    adapter = get_adapter(messenger_selectors.connection_config(connection))
    text = f"{subject}\n\n{body}" if sandbox else body
    try:
        adapter.send(OutgoingMessage(to=to, subject=subject, text=text, reference=reference))
        return True
    except ProviderError as exc:
        logger.warning("e-mail %s to a subscriber failed: %s", reference, exc)
        return False
    finally:
        close = getattr(adapter, "close", None)
        if callable(close):
            close()


def email_confirmation_send(*, confirmation_id: int) -> bool:
    """Worker: mail the confirmation link. Skips requests already confirmed or expired."""
    confirmation = EmailConfirmation.objects.select_related("contact__connection").filter(pk=confirmation_id).first()
    if confirmation is None or confirmation.confirmed_at is not None or confirmation.expires_at < timezone.now():
        return False
    language = confirmation.language
    channels = Channel.objects.filter(pk__in=confirmation.channel_ids).order_by("position", "name")
    url = links.absolute_url(reverse("subscribers:email_confirm", args=[_token(confirmation)]))
    tenant = selectors.tenant_name()
    privacy = str(getattr(selectors.current_tenant(), "privacy_notice_url", "") or "") or "-"
    expires = formats.date_format(timezone.localtime(confirmation.expires_at), "DATETIME_FORMAT")
    body = texts.message(
        "email_confirm_body", language, tenant=tenant, url=url, expires=expires, privacy=privacy,
        channels="\n".join(f"- {c.name}" for c in channels),
    )  # fmt: skip
    subject = texts.message("email_confirm_subject", language, tenant=tenant)
    return _send(
        confirmation.contact.connection, to=confirmation.contact.address, subject=subject, body=body,
        reference=f"doi-{confirmation.pk}",
    )  # fmt: skip


def email_known_notice_send(*, subscriber_id: int, contact_id: int) -> bool:
    """Worker: tell a known address there is nothing to do (with its preference link)."""
    contact = Contact.objects.select_related("connection").filter(pk=contact_id, subscriber_id=subscriber_id).first()
    subscriber = Subscriber.objects.filter(pk=subscriber_id, status=Subscriber.Status.ACTIVE).first()
    if contact is None or subscriber is None:
        return False
    tenant = selectors.tenant_name()
    body = texts.message("email_known_body", subscriber.language, tenant=tenant, url=links.preferences_url(subscriber))
    subject = texts.message("email_known_subject", subscriber.language, tenant=tenant)
    return _send(contact.connection, to=contact.address, subject=subject, body=body, reference=f"known-{contact.pk}")


@transaction.atomic
def email_subscription_confirm(*, token: str) -> EmailConfirmation | None:
    """The click. Idempotent (a second click changes nothing); None for an unknown or expired
    token."""
    if not token or len(token) > 200:
        return None
    confirmation = (
        EmailConfirmation.objects.select_for_update().select_related("subscriber", "contact__connection")
        .filter(token_sha256=_sha256(token)).first()
    )  # fmt: skip
    if confirmation is None:
        return None
    if confirmation.confirmed_at is not None:
        return confirmation
    now = timezone.now()
    if confirmation.expires_at < now:
        return None
    subscriber = confirmation.subscriber
    contact = confirmation.contact
    channels = Channel.objects.filter(pk__in=confirmation.channel_ids, is_active=True)
    for channel in channels:
        subscription, _ = Subscription.objects.select_for_update().get_or_create(
            subscriber=subscriber, channel=channel,
            defaults={"status": Subscription.Status.PENDING, "source": confirmation.source, "subscribed_at": now},
        )  # fmt: skip
        if subscription.status == Subscription.Status.ACTIVE:
            continue
        subscription.status = Subscription.Status.ACTIVE
        subscription.source = confirmation.source
        subscription.source_detail = confirmation.source_detail
        subscription.subscribed_at = now
        subscription.confirmed_at = now
        subscription.unsubscribed_at = None
        subscription.save()
        text = consent_text_current(channel=channel, language=confirmation.language)
        consent_record(
            kind=ConsentEvent.Kind.OPT_IN, subscriber=subscriber, channel=channel, source=confirmation.source,
            source_detail=confirmation.source_detail, evidence=f"e-mail form, token sha256 {confirmation.token_sha256}",
            connection=contact.connection, consent_text=text, at=confirmation.created_at,
        )  # fmt: skip
        consent_record(
            kind=ConsentEvent.Kind.CONFIRMATION, subscriber=subscriber, channel=channel, source=confirmation.source,
            source_detail=confirmation.source_detail, evidence=f"confirmed token sha256 {confirmation.token_sha256}",
            connection=contact.connection, consent_text=text, at=now,
        )  # fmt: skip
    contact_reactivate(contact, "confirmed the e-mail address")
    confirmation.confirmed_at = now
    confirmation.save(update_fields=["confirmed_at"])
    return confirmation


@transaction.atomic
def email_confirmations_purge_expired(*, now: datetime | None = None) -> int:
    """Forget unconfirmed requests whose link expired: their pending subscriptions, and the
    address itself when nothing else connects us to that person. Returns how many."""
    now = now or timezone.now()
    expired = list(
        EmailConfirmation.objects.filter(confirmed_at__isnull=True, expires_at__lt=now).select_related("contact")[:500]
    )
    for confirmation in expired:
        Subscription.objects.filter(
            subscriber_id=confirmation.subscriber_id, channel_id__in=confirmation.channel_ids,
            status=Subscription.Status.PENDING,
        ).delete()  # fmt: skip
        confirmation.delete()
        subscriber_id, contact = confirmation.subscriber_id, confirmation.contact
        still_used = (
            Subscription.objects.filter(subscriber_id=subscriber_id).exists()
            or ConsentEvent.objects.filter(subscriber_id=subscriber_id).exists()
            or EmailConfirmation.objects.filter(subscriber_id=subscriber_id).exists()
        )
        if not still_used:
            contact.delete()
            if not Contact.objects.filter(subscriber_id=subscriber_id).exists():
                Subscriber.objects.filter(pk=subscriber_id).delete()
    return len(expired)
