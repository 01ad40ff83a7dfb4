""" "Send a test to me": the broadcast as it is saved now, to the author's own simulated phone.

The test goes through the normal single-message path (messengers.services.message_queue → the
sandbox adapter), so the phone simulator shows it as a citizen would see it; it never reaches a
subscriber: the phone belongs to the user (its number is derived from their id) and is no
subscription of any channel. One test per user every 20 seconds; each one is in the audit log."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from accounts.models import AuditEvent, User
from accounts.services import audit_log
from broadcasts.headlines import headline
from broadcasts.models import Broadcast
from broadcasts.selectors import template_fill
from broadcasts.services.states import S
from core.errors import ApplicationError
from core.http import RequestMeta
from messengers.adapters.base import Button, Media, TemplateRef
from messengers.models import Contact, OutboundMessage, WhatsAppTemplate
from messengers.selectors import connection_sandbox
from messengers.services import contact_get_or_create, message_queue
from tenants.selectors import tenant_public_base_url

TESTABLE = (S.DRAFT, S.REJECTED)
TEST_INTERVAL = timedelta(seconds=20)
AUDIT_ACTION = "broadcast.test_sent"
PURPOSE = "broadcast_test"

NOT_ALLOWED = gettext_noop("Your role cannot send tests of broadcasts.")
NOT_TESTABLE = gettext_noop("Tests can be sent from drafts and rejected broadcasts only.")
NO_SANDBOX = gettext_noop(
    "There is no active sandbox connection, so there is no test phone to send to; ask an administrator to "
    "add one under Messengers."
)
TOO_SOON = gettext_noop("You sent a test a moment ago; wait %(seconds)d seconds before the next one.")
NO_TEXT = gettext_noop("Write and save the text first.")


def sandbox_test_address(user: User) -> str:
    """The number of a user's own simulated phone (+49 150 99…, apart from the random +49 155
    numbers of simulated citizens)."""
    return f"+4915099{user.pk:06d}"


def user_can_send_test(user: User | None) -> bool:
    """The role: those who may change broadcasts may try them on their own phone."""
    return bool(user and user.is_active and user.has_perm("broadcasts.change_broadcast"))


@transaction.atomic
def broadcast_test_send(
    *, broadcast: Broadcast, actor: User | None, language: str = "", meta: RequestMeta | None = None
) -> list[OutboundMessage]:
    """Queue the saved content in `language` (else German, else any) to `actor`'s own sandbox
    phone, created on first use: the text with media and buttons and, when a WhatsApp template
    is chosen, the filled template as a second message. Returns the queued messages."""
    if actor is None or not user_can_send_test(actor):
        raise ApplicationError(gettext(NOT_ALLOWED))
    if broadcast.status not in TESTABLE:
        raise ApplicationError(gettext(NOT_TESTABLE))
    sandbox = connection_sandbox()
    if sandbox is None:
        raise ApplicationError(gettext(NO_SANDBOX))
    # one at a time per user: the lock orders two quick presses, the second sees the first
    User.objects.select_for_update().filter(pk=actor.pk).values_list("pk", flat=True).first()
    now = timezone.now()
    last = (
        AuditEvent.objects.filter(action=AUDIT_ACTION, actor=actor, at__gt=now - TEST_INTERVAL)
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )
    if last is not None:
        wait = max(1, int((last + TEST_INTERVAL - now).total_seconds() + 0.999))
        raise ApplicationError(gettext(TOO_SOON) % {"seconds": wait}, extra={"retry_after": wait})
    variants = {v.language: v for v in broadcast.variants.all()}
    variant = variants.get(language) or variants.get("de") or next(iter(variants.values()), None)
    if variant is None:
        raise ApplicationError(gettext(NO_TEXT))

    address = sandbox_test_address(actor)
    contact = Contact.objects.filter(connection=sandbox, address=address).first()
    if contact is None:
        name = actor.get_full_name() or actor.get_username()
        contact = contact_get_or_create(
            connection=sandbox, address=address, display_name=gettext("Test phone of %(name)s") % {"name": name}
        )
    media = None
    if broadcast.media:
        media = Media(
            url=f"{tenant_public_base_url()}{broadcast.media.url}",
            kind="video" if broadcast.media_kind == "video" else "image",
        )
    buttons = tuple(
        Button(title=str(b.get("title", ""))[:20], url=str(b.get("url", "")))
        for b in (broadcast.buttons or [])
        if b.get("url")
    )
    queued = [
        message_queue(
            connection=sandbox,
            to=address,
            text=variant.body,
            purpose=PURPOSE,
            contact=contact,
            buttons=buttons,
            media=media,
            subject=headline(subject=variant.subject, body=variant.body)[:200],
        )
    ]
    if broadcast.wa_template_name:
        template = (
            WhatsAppTemplate.objects.filter(name=broadcast.wa_template_name, language=broadcast.wa_template_language)
            .order_by("pk")
            .first()
        )
        params = tuple(broadcast.wa_template_params)
        queued.append(
            message_queue(
                connection=sandbox,
                to=address,
                text=template_fill(template.body, params) if template else "",
                purpose=PURPOSE,
                contact=contact,
                template=TemplateRef(
                    name=broadcast.wa_template_name, language=broadcast.wa_template_language, body_params=params
                ),
            )
        )
    audit_log(
        action=AUDIT_ACTION,
        actor=actor,
        target=broadcast,
        details={
            "language": variant.language,
            "connection": sandbox.pk,
            "address": address,
            "revision": broadcast.revision,
            "messages": len(queued),
        },
        meta=meta,
    )
    return queued
