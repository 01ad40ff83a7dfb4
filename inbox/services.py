"""Writes of the shared inbox: messages arrive in conversations; agents reply, note, assign,
label and close. Every change bumps Conversation.changed_at and change_xid (the writing
transaction's id), by which the inbox page polls (selectors.conversations_changed_since)."""

from __future__ import annotations

import base64
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.mail import EmailMessage
from django.core.mail.message import make_msgid
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, Greatest
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext, gettext_noop

from accounts.services import audit_log
from broadcasts.selectors import broadcast_answered_by
from core.errors import ApplicationError
from core.http import RequestMeta
from core.signing import tenant_signature
from core.tasks import enqueue_tenant_task
from core.tenancy import connection as db
from inbox import selectors, tasks
from inbox.hours import HoursError, parse_holidays, parse_hours
from inbox.models import OPEN_STATES, CannedReply, Conversation, Department, Entry, Forward, InboxSettings
from messengers.adapters.base import TemplateRef
from messengers.models import InboundMessage
from messengers.outgoing.services import outgoing_event_emit
from messengers.selectors import connection_receiving_mail
from messengers.services import message_queue
from subscribers.selectors import current_tenant
from tenants.selectors import tenant_absolute_url

logger = logging.getLogger(__name__)

# What a person does that is no message to answer: never opens a conversation. A reaction
# (an emoji on one of our messages) joins an open conversation but does not open one.
NOT_MESSAGES = frozenset({"block", "unblock", "start"})
JOINS_ONLY = frozenset({"reaction"})
REPLY_PURPOSE = "inbox"
AUTO_REPLY_PURPOSE = "inbox-auto"
# the id of the transaction writing the row (PostgreSQL 13+), for the inbox page's poll
CURRENT_XID = RawSQL("pg_current_xact_id()::text::bigint", ())
FORWARD_LINK_DAYS = 30
PREVIEW_LENGTH = 200
LABEL_LENGTH = 40
MAX_LABELS = 20


def _answer_window() -> timedelta:
    return timedelta(hours=selectors.inbox_settings().answer_window_hours)


def _preview(message: InboundMessage) -> str:
    if message.text:
        return message.text[:PREVIEW_LENGTH]
    return f"[{message.kind}]"


def conversation_receive(*, message: InboundMessage) -> Conversation | None:
    """Put a person's message into their open conversation, or open one. None: the message is
    no question (a block, a reaction without an open conversation).

    Two workers applying two messages of the same person at once end up in one conversation:
    the second to insert hits the one-open-per-contact constraint and joins the first's."""
    if message.kind in NOT_MESSAGES:
        return None
    for _attempt in range(3):
        try:
            with transaction.atomic():
                conversation = _receive(message)
            return conversation
        except IntegrityError:
            continue  # another worker opened the conversation a moment ago: join it
    raise RuntimeError(f"could not file inbound message {message.pk} into a conversation")


def _receive(message: InboundMessage) -> Conversation | None:
    now = timezone.now()
    conversation = (
        Conversation.objects.select_for_update().filter(contact_id=message.contact_id, status__in=OPEN_STATES).first()
    )
    if conversation is None:
        if message.kind in JOINS_ONLY:
            return None
        contact = message.contact
        conversation = Conversation.objects.create(
            contact_id=message.contact_id,
            connection_id=message.connection_id,
            status=Conversation.Status.OPEN,
            last_activity_at=message.sent_at,
            changed_at=now,
            answers_broadcast_id=broadcast_answered_by(
                connection_id=message.connection_id,
                reply_to_provider_id=message.reply_to_provider_id,
                subscriber_id=contact.subscriber_id,
                at=message.sent_at,
                window=_answer_window(),
            ),
        )
    Entry.objects.create(conversation=conversation, kind=Entry.Kind.INBOUND, text=message.text, inbound=message)
    Conversation.objects.filter(pk=conversation.pk).update(
        status=Conversation.Status.OPEN,
        closed_at=None,
        unread_count=F("unread_count") + 1,
        waiting_since=Coalesce(F("waiting_since"), message.sent_at),
        last_activity_at=Greatest(F("last_activity_at"), message.sent_at),
        preview=_preview(message),
        changed_at=now,
        change_xid=CURRENT_XID,
    )
    conversation.refresh_from_db()
    outgoing_event_emit(
        event_type="message.received",
        data=lambda: {
            "conversation_id": conversation.pk,
            "message": {
                "id": message.pk, "kind": message.kind, "text": message.text, "sent_at": message.sent_at,
                "reply_to_broadcast_id": conversation.answers_broadcast_id,
            },
            "connection": {"id": message.connection_id, "provider": message.connection.provider},
            "contact_id": message.contact_id,
            "subscriber_id": message.contact.subscriber_id,
        },
    )  # fmt: skip
    _auto_reply_if_closed(conversation)
    return conversation


def _auto_reply_if_closed(conversation: Conversation) -> None:
    """Outside office hours, one automatic answer per conversation, in the person's language."""
    if conversation.auto_replied_at is not None:
        return
    text = selectors.auto_reply_text(conversation)
    if text:
        _queue_reply(
            conversation=conversation, author=None, text=text, kind=Entry.Kind.AUTO_REPLY, purpose=AUTO_REPLY_PURPOSE
        )


def _require(actor: Any, permission: str, message: str) -> None:
    if actor is None or not actor.is_active or not actor.has_perm(permission):
        raise ApplicationError(message)


def _event(conversation: Conversation, actor: Any, event: str, details: dict[str, Any]) -> Entry:
    return Entry.objects.create(
        conversation=conversation, kind=Entry.Kind.EVENT, author=actor, event=event, details=details
    )


def _touch(conversation: Conversation, **changes: Any) -> None:
    Conversation.objects.filter(pk=conversation.pk).update(changed_at=timezone.now(), change_xid=CURRENT_XID, **changes)
    conversation.refresh_from_db()


@transaction.atomic
def conversation_reply(
    *, conversation: Conversation, author: Any, text: str, template: TemplateRef | None = None
) -> Entry:
    """Answer the person on their messenger through the single-message path (sent by a worker
    after commit; its delivery status arrives through the single-message status sink)."""
    _require(author, "inbox.reply_conversation", gettext_noop("You may not answer conversations."))
    return _queue_reply(conversation=conversation, author=author, text=text, template=template)


def _queue_reply(
    *,
    conversation: Conversation,
    author: Any,
    text: str,
    template: TemplateRef | None = None,
    kind: str = Entry.Kind.REPLY,
    purpose: str = REPLY_PURPOSE,
) -> Entry:
    text = text.strip()
    if template is None and not text:
        raise ApplicationError(gettext_noop("The answer is empty."))
    conversation = (
        Conversation.objects.select_for_update().select_related("contact", "connection").get(pk=conversation.pk)
    )
    if template is None and selectors.reply_needs_template(conversation):
        raise ApplicationError(
            gettext_noop(
                "The person last wrote more than 24 hours ago: WhatsApp only allows an approved template now. "
                "Choose one of the templates."
            )
        )
    contact = conversation.contact
    threading = selectors.reply_threading(conversation)
    outbound = message_queue(
        connection=conversation.connection,
        to=contact.address,
        text=text,
        purpose=purpose,
        contact=contact,
        template=template,
        subject=threading.subject,
        reply_to_provider_id=threading.reply_to_provider_id,
    )
    entry = Entry.objects.create(
        conversation=conversation,
        kind=kind,
        text=text,
        outbound=outbound,
        author=author,
        details={"template": template.name} if template else {},
    )
    if kind == Entry.Kind.AUTO_REPLY:
        _touch(conversation, auto_replied_at=timezone.now())
        return entry
    now = timezone.now()
    changes: dict[str, Any] = {
        "waiting_since": None,
        "unread_count": 0,
        "last_activity_at": now,
        "preview": (text or (template.name if template else ""))[:PREVIEW_LENGTH],
    }
    if conversation.status == Conversation.Status.OPEN:
        changes["status"] = Conversation.Status.WAITING
    if conversation.first_response_at is None:
        changes["first_response_at"] = now
    _touch(conversation, **changes)
    return entry


@transaction.atomic
def conversation_add_note(*, conversation: Conversation, author: Any, text: str) -> Entry:
    """An internal note: seen by the team, never sent to the person."""
    _require(author, "inbox.view_conversation", gettext_noop("You may not work in the inbox."))
    text = text.strip()
    if not text:
        raise ApplicationError(gettext_noop("The note is empty."))
    entry = Entry.objects.create(conversation=conversation, kind=Entry.Kind.NOTE, text=text, author=author)
    _touch(conversation)
    return entry


@transaction.atomic
def conversation_assign(*, conversation: Conversation, actor: Any, assignee: Any | None) -> Conversation:
    _require(actor, "inbox.change_conversation", gettext_noop("You may not assign conversations."))
    if assignee is not None and not (assignee.is_active and assignee.has_perm("inbox.view_conversation")):
        raise ApplicationError(gettext_noop("This person cannot work in the inbox."))
    new_id = assignee.pk if assignee is not None else None
    if conversation.assignee_id == new_id:
        return conversation
    _event(conversation, actor, "assigned", {"to": assignee.get_username() if assignee is not None else ""})
    _touch(conversation, assignee_id=new_id)
    return conversation


@transaction.atomic
def conversation_set_status(*, conversation: Conversation, actor: Any, status: str) -> Conversation:
    """Open, waiting or closed. Closing keeps the thread; the person's next message opens a new
    conversation. Reopening fails when the person already has another open conversation."""
    _require(actor, "inbox.change_conversation", gettext_noop("You may not change conversations."))
    if status not in Conversation.Status.values:
        raise ApplicationError(gettext_noop("Unknown status."))
    if conversation.status == status:
        return conversation
    changes: dict[str, Any] = {"status": status}
    if status == Conversation.Status.CLOSED:
        changes["closed_at"] = timezone.now()
        changes["waiting_since"] = None
    else:
        changes["closed_at"] = None
    try:
        with transaction.atomic():
            _touch(conversation, **changes)
    except IntegrityError:
        raise ApplicationError(
            gettext_noop("This person has another open conversation; continue there instead.")
        ) from None
    _event(conversation, actor, "status", {"status": status})
    return conversation


_SPACES = re.compile(r"\s+")


def _clean_labels(labels: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for raw in labels:
        label = _SPACES.sub(" ", str(raw)).strip()[:LABEL_LENGTH]
        if label and label.casefold() not in seen:
            seen[label.casefold()] = label
    if len(seen) > MAX_LABELS:
        raise ApplicationError(gettext_noop("At most {count} labels per conversation."), params={"count": MAX_LABELS})
    return sorted(seen.values(), key=str.casefold)


@transaction.atomic
def conversation_set_labels(*, conversation: Conversation, actor: Any, labels: list[str]) -> Conversation:
    _require(actor, "inbox.change_conversation", gettext_noop("You may not change conversations."))
    cleaned = _clean_labels(labels)
    if cleaned == conversation.labels:
        return conversation
    _event(conversation, actor, "labels", {"labels": cleaned})
    _touch(conversation, labels=cleaned)
    return conversation


def conversation_mark_read(*, conversation: Conversation) -> None:
    """An agent opened the conversation: nothing in it is unread any more. No change bump (the
    list of other agents need not refresh for it)."""
    Conversation.objects.filter(pk=conversation.pk).exclude(unread_count=0).update(unread_count=0)
    conversation.unread_count = 0


def canned_reply_render(*, canned: CannedReply, conversation: Conversation) -> str:
    """The canned text with `{{ name }}` and `{{ channel }}` filled in (plain substitution, no
    template language: a canned reply is data an admin typed, never code)."""
    return selectors.fill_placeholders(canned.body, selectors.conversation_placeholders(conversation))


# --------------------------------------------------------------------------------------------
# Departments
# --------------------------------------------------------------------------------------------
@transaction.atomic
def conversation_forward(
    *,
    conversation: Conversation,
    actor: Any,
    department: Department,
    question: str,
    note: str = "",
    include_contact: bool = False,
    meta: RequestMeta | None = None,
) -> Forward:
    """Send the question to a department by e-mail (after commit, by a worker). The department
    gets a pseudonymous reference and a one-time answer link, never the person's number or name
    unless `include_contact`. Audit-logged."""
    _require(actor, "inbox.forward_conversation", gettext_noop("You may not forward conversations."))
    question = question.strip()
    if not question:
        raise ApplicationError(gettext_noop("Write the question for the department."))
    forward = Forward.objects.create(
        conversation=conversation,
        department=department,
        question=question[:10_000],
        note=note.strip()[:4000],
        include_contact=include_contact,
        created_by=actor,
    )
    _event(conversation, actor, "forwarded", {"department": department.name, "reference": forward.reference})
    changes: dict[str, Any] = {"department_id": department.pk}
    if conversation.status == Conversation.Status.OPEN:
        changes["status"] = Conversation.Status.WAITING
    _touch(conversation, **changes)
    audit_log(
        action="inbox.forwarded",
        actor=actor,
        target=conversation,
        details={"department": department.name, "reference": forward.reference, "contact_included": include_contact},
        meta=meta,
    )
    enqueue_tenant_task(tasks.forward_send_task, forward_id=forward.pk)
    return forward


def forward_token(forward: Forward) -> str:
    return f"{forward.pk}.{tenant_signature(str(forward.pk), purpose='inbox.forward', schema=db.schema_name)}"


def forward_from_token(token: str) -> Forward | None:
    """The forward a department's answer link names, if the signature holds for this tenant."""
    pk_text, _sep, signature = token.partition(".")
    if not pk_text.isdigit() or len(pk_text) > 18:
        return None
    expected = tenant_signature(pk_text, purpose="inbox.forward", schema=db.schema_name)
    if not constant_time_compare(signature, expected):
        return None
    return Forward.objects.select_related("department", "conversation").filter(pk=int(pk_text)).first()


def forward_link_expired(forward: Forward) -> bool:
    return forward.created_at < timezone.now() - timedelta(days=FORWARD_LINK_DAYS)


# The tag a forward's e-mail carries in its Reply-To (`news+fwd-12-…@city.example`) and its
# Message-ID (`<fwd-12-…@city.example>`): the forward's id and 96 bits of a signature bound to the
# tenant. Hex, because mail systems may lower-case addresses.
MAIL_TAG = re.compile(r"(?<![0-9a-z])fwd-(\d{1,18})-([0-9a-f]{24})(?![0-9a-z])", re.IGNORECASE)


def forward_mail_tag(forward: Forward) -> str:
    signature = tenant_signature(str(forward.pk), purpose="inbox.forward-mail", schema=db.schema_name)
    digest = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)).hex()[:24]
    return f"fwd-{forward.pk}-{digest}"


def forward_from_mail_tag(tag: str) -> Forward | None:
    """The forward a tag names, if its signature holds for this tenant."""
    found = MAIL_TAG.fullmatch(tag.strip())
    if found is None:
        return None
    forward = Forward.objects.select_related("department", "conversation").filter(pk=int(found.group(1))).first()
    if forward is None or not constant_time_compare(forward_mail_tag(forward), tag.strip().lower()):
        return None
    return forward


def forward_send(*, forward_id: int) -> int:
    """The e-mail to the department (worker), in the tenant's language. Returns mails sent.

    When the tenant receives mail (an active e-mail connection with an inbound secret), the
    e-mail's Reply-To is that connection's address plus the forward's tag and its Message-ID
    carries the tag too, so the department may simply reply; otherwise the e-mail says that
    only the link reaches us."""
    forward = Forward.objects.select_related("department", "conversation__contact").filter(pk=forward_id).first()
    if forward is None:
        return 0
    tenant = current_tenant()
    link = tenant_absolute_url(reverse("inbox:department_answer", args=[forward_token(forward)]))
    receiving = connection_receiving_mail()
    reply_to: list[str] = []
    if receiving is not None:
        local, _at, domain = receiving.external_id.strip().rpartition("@")
        tag = forward_mail_tag(forward)
        reply_to = [f"{local.partition('+')[0]}+{tag}@{domain}"]
        message_id = f"<{tag}@{domain}>"
    else:
        message_id = make_msgid(domain="forward.invalid")
    with translation.override(getattr(tenant, "default_language", "") or "de"):
        subject = gettext("[%(reference)s] Question from a citizen for %(department)s") % {
            "reference": forward.reference,
            "department": forward.department.name,
        }
        parts = [
            gettext("Our team forwards you this question (reference %(reference)s):")
            % {"reference": forward.reference},
            "",
            forward.question,
            "",
        ]
        if forward.note:
            parts += [gettext("Note from our team:"), forward.note, ""]
        if forward.include_contact:
            contact = forward.conversation.contact
            parts += [
                gettext("Contact details: %(name)s %(address)s")
                % {"name": contact.display_name, "address": contact.address},
                "",
            ]
        if reply_to:
            parts += [
                gettext(
                    "Please answer by replying to this e-mail, or here (no login needed; the link works once "
                    "and for %(days)d days):"
                )
                % {"days": FORWARD_LINK_DAYS},
            ]
        else:
            parts += [
                gettext(
                    "Replies to this e-mail do not reach us. Please answer here (no login needed; the link "
                    "works once and for %(days)d days):"
                )
                % {"days": FORWARD_LINK_DAYS},
            ]
        parts.append(link)
        body = "\n".join(parts) + "\n"
    Forward.objects.filter(pk=forward.pk).update(message_id=message_id)
    email = EmailMessage(
        subject=subject,
        body=body,
        to=[forward.department.email],
        reply_to=reply_to,
        headers={"Message-ID": message_id},
    )
    return email.send(fail_silently=True)


@transaction.atomic
def forward_answer(*, forward: Forward, text: str, via: str = "link") -> Entry:
    """The department answered (through its link, or `via` "email"): the answer lands in the
    conversation as a draft for an agent (or is sent at once if the tenant chose so). Works
    once, and not after the link expired."""
    text = text.strip()
    if not text:
        raise ApplicationError(gettext_noop("The answer is empty."))
    if forward_link_expired(forward):
        raise ApplicationError(gettext_noop("This question was forwarded too long ago to be answered here."))
    claimed = Forward.objects.filter(pk=forward.pk, answered_at__isnull=True).update(answered_at=timezone.now())
    if not claimed:
        raise ApplicationError(gettext_noop("This question has already been answered. Thank you!"))
    conversation = forward.conversation
    entry = Entry.objects.create(
        conversation=conversation,
        kind=Entry.Kind.DEPARTMENT,
        text=text[:10_000],
        details={"department": forward.department.name, "reference": forward.reference, "via": via},
    )
    now = timezone.now()
    _touch(conversation, status=Conversation.Status.OPEN, closed_at=None, waiting_since=now, last_activity_at=now)
    if selectors.inbox_settings().send_department_answers:
        _queue_reply(conversation=conversation, author=None, text=text)
    return entry


def _mail_tags(payload: Any) -> list[str]:
    """Forward tags in a reply's recipients (plus-addresses) and its In-Reply-To/References."""
    if not isinstance(payload, dict):
        return []
    values: list[str] = []
    for key in ("to", "cc", "delivered_to", "in_reply_to", "references"):
        found = payload.get(key)
        if isinstance(found, list):
            values += [str(item) for item in found[:100]]
    tags: list[str] = []
    for value in values:
        for match in MAIL_TAG.finditer(value):
            tag = match.group(0).lower()
            if tag not in tags:
                tags.append(tag)
    return tags[:10]


def forward_answer_by_mail(*, sender: str, text: str, payload: Any) -> str | None:
    """An inbound e-mail that answers a forward: it names a forward's tag (Reply-To address or
    In-Reply-To), or comes from a department's address. Such mail never reaches keyword commands
    or the citizens' inbox, and no contact is made for it (messengers calls this before it looks
    up the sender, settings.MESSENGER_INBOUND_INTERCEPTORS). A valid, unexpired, unanswered tag
    makes the text the forward's answer (forward_answer); anything else is logged and dropped.
    None: not department mail."""
    tags = _mail_tags(payload)
    from_department = bool(sender) and Department.objects.filter(email__iexact=sender).exists()
    if not tags and not from_department:
        return None
    forward = next((found for found in map(forward_from_mail_tag, tags) if found is not None), None)
    if forward is None:
        reason = "no valid forward tag" if tags else "department address without a forward tag"
        logger.warning("department e-mail dropped in %s: %s", db.schema_name, reason)
        return "dept-dropped"
    quote_only = isinstance(payload, dict) and bool(payload.get("quote_only"))
    try:
        forward_answer(forward=forward, text="" if quote_only else text, via="email")
    except ApplicationError as exc:
        logger.warning("department e-mail for %s dropped in %s: %s", forward.reference, db.schema_name, exc.message)
        return "dept-dropped"
    return "dept-answer"


# --------------------------------------------------------------------------------------------
# Settings and retention
# --------------------------------------------------------------------------------------------
def inbox_settings_ensure() -> InboxSettings:
    """The settings row, created with the defaults if there is none yet."""
    row, _created = InboxSettings.objects.get_or_create(key="inbox")
    return row


def inbox_settings_update(*, actor: Any, meta: RequestMeta | None = None, **fields: Any) -> InboxSettings:
    """Check office hours and holidays (messages name the line) and save."""
    _require(actor, "inbox.change_inboxsettings", gettext_noop("You may not change the inbox settings."))
    try:
        parse_hours(fields.get("office_hours", ""))
        parse_holidays(fields.get("holidays", ""))
    except HoursError as exc:
        raise ApplicationError(exc.message) from None
    current = inbox_settings_ensure()
    for name, value in fields.items():
        setattr(current, name, value)
    current.save()
    audit_log(
        action="inbox.settings_changed", actor=actor, target=current, details={"fields": sorted(fields)}, meta=meta
    )
    return current


def inbox_purge(*, retention_days: int | None = None) -> int:
    """Delete what citizens wrote after the tenant's inbox retention: conversations without
    activity for that long (their threads go with them) and inbound messages received before."""
    days = retention_days if retention_days is not None else getattr(current_tenant(), "inbox_retention_days", 90)
    cutoff = timezone.now() - timedelta(days=max(1, int(days)))
    conversations, _rows = Conversation.objects.filter(last_activity_at__lt=cutoff).delete()
    messages, _rows = InboundMessage.objects.filter(received_at__lt=cutoff).delete()
    return conversations + messages


# --------------------------------------------------------------------------------------------
# Answer many at once
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupReplyResult:
    sent: list[int]  # conversation ids answered
    skipped: list[int]  # conversation ids that need a WhatsApp template (outside 24 h) or were closed


def conversation_group_reply(*, conversation_ids: list[int], author: Any, text: str) -> GroupReplyResult:
    """One answer to many people: each gets it on their own messenger, each conversation records
    it. Conversations that cannot take free text (WhatsApp outside 24 h) or are closed are
    skipped and reported, never half-sent; each conversation is its own transaction."""
    _require(author, "inbox.reply_conversation", gettext_noop("You may not answer conversations."))
    if not text.strip():
        raise ApplicationError(gettext_noop("The answer is empty."))
    sent: list[int] = []
    skipped: list[int] = []
    rows = Conversation.objects.filter(pk__in=conversation_ids[:1000]).select_related("contact", "connection")
    for conversation in rows.order_by("pk"):
        if conversation.status == Conversation.Status.CLOSED or selectors.reply_needs_template(conversation):
            skipped.append(conversation.pk)
            continue
        with transaction.atomic():
            _queue_reply(conversation=conversation, author=author, text=text)
        sent.append(conversation.pk)
    return GroupReplyResult(sent=sent, skipped=skipped)
