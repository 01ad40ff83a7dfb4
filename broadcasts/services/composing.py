"""Composing broadcasts: creating them, changing their content or targeting (with the edit
record behind the four-eyes rule), their language variants, and the content hash an approval
freezes.

Every change of content or targeting (whatever the state, by whatever role) is recorded as a
BroadcastEdit row — who, when, what — and bumps `Broadcast.revision`; a save that changes
nothing, or only the send time, is not a change. Changing approved content sends it back for
approval; changing a rejected one makes it a draft again."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.core.files import File
from django.db import transaction

from accounts.models import User
from accounts.services import audit_log
from broadcasts.models import Broadcast, BroadcastEdit, BroadcastVariant
from broadcasts.services import notifications, sending
from broadcasts.services.states import EDITABLE, NOT_EDITABLE, NOT_EDITOR, S, transition
from channels.models import Channel, Priority
from core.errors import ApplicationError
from core.http import RequestMeta


class Keep(enum.Enum):
    """`broadcast_update(scheduled_at=KEEP)`: leave it as it is (None clears it)."""

    KEEP = "keep"


KEEP = Keep.KEEP


def broadcast_content(broadcast: Broadcast) -> dict[str, Any]:
    """Everything approval covers — what recipients read and who they are — by aspect
    (BroadcastEdit.Aspect). The send time is not in it: moving it needs no new approval."""
    aspect = BroadcastEdit.Aspect
    return {
        aspect.TITLE: broadcast.title,
        aspect.PRIORITY: broadcast.priority,
        aspect.TEXT: sorted((v.language, v.body, v.subject) for v in broadcast.variants.all()),
        aspect.CHANNELS: sorted(broadcast.channels.values_list("pk", flat=True)),
        aspect.DISTRICTS: sorted(broadcast.districts.values_list("pk", flat=True)),
        aspect.LANGUAGES: sorted(broadcast.languages),
        aspect.TAGS: sorted(broadcast.tags),
        aspect.MEDIA: broadcast.media.name if broadcast.media else "",
        aspect.BUTTONS: broadcast.buttons,
        aspect.TEMPLATE: [
            broadcast.wa_template_name,
            broadcast.wa_template_language,
            list(broadcast.wa_template_params),
        ],
    }


def broadcast_content_hash(broadcast: Broadcast) -> str:
    content = {str(aspect): value for aspect, value in broadcast_content(broadcast).items()}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


@transaction.atomic
def broadcast_create(
    *,
    author: User | None,
    title: str,
    variants: dict[str, str],
    channels: Iterable[Channel],
    priority: str | None = None,
    districts: Iterable[Any] = (),
    languages: Sequence[str] = (),
    tags: Sequence[str] = (),
    buttons: Sequence[dict[str, str]] = (),
    subjects: dict[str, str] | None = None,
    wa_template_name: str = "",
    wa_template_language: str = "",
    wa_template_params: Sequence[str] = (),
    scheduled_at: datetime | None = None,
    meta: RequestMeta | None = None,
) -> Broadcast:
    channel_list = list(channels)
    if priority is None:
        priority = (
            Priority.ALERT if any(c.default_priority == Priority.ALERT for c in channel_list) else Priority.NORMAL
        )
    broadcast = Broadcast.objects.create(
        title=title.strip()[:200],
        author=author,
        priority=priority,
        languages=list(languages),
        tags=[t.strip().lower() for t in tags if t.strip()],
        buttons=list(buttons),
        wa_template_name=wa_template_name,
        wa_template_language=wa_template_language,
        wa_template_params=list(wa_template_params),
        scheduled_at=scheduled_at,
    )
    broadcast.channels.set(channel_list)
    broadcast.districts.set(list(districts))
    _set_variants(broadcast, variants, subjects or {})
    audit_log(action="broadcast.created", actor=author, target=broadcast, meta=meta)
    return broadcast


def _set_variants(broadcast: Broadcast, variants: dict[str, str], subjects: dict[str, str]) -> None:
    keep = {lang for lang, body in variants.items() if body.strip()}
    BroadcastVariant.objects.filter(broadcast=broadcast).exclude(language__in=keep).delete()
    for language in keep:
        BroadcastVariant.objects.update_or_create(
            broadcast=broadcast,
            language=language,
            defaults={"body": variants[language].strip(), "subject": subjects.get(language, "")[:200]},
        )


@transaction.atomic
def broadcast_update(
    *,
    broadcast: Broadcast,
    actor: User | None,
    variants: dict[str, str] | None = None,
    subjects: dict[str, str] | None = None,
    channels: Iterable[Channel] | None = None,
    districts: Iterable[Any] | None = None,
    title: str | None = None,
    priority: str | None = None,
    languages: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    buttons: Sequence[dict[str, str]] | None = None,
    media: File[Any] | str | None = None,
    media_kind: str | None = None,
    wa_template_name: str | None = None,
    wa_template_language: str | None = None,
    wa_template_params: Sequence[str] | None = None,
    scheduled_at: datetime | None | Keep = KEEP,
    meta: RequestMeta | None = None,
) -> Broadcast:
    """Change content or targeting; None (KEEP for `scheduled_at`) leaves a field as it is.
    Every real change is recorded (BroadcastEdit: who, what, revision) and makes the actor a
    co-editor, who may no longer approve it (four-eyes). Changing approved content sends it
    back for approval."""
    if actor is not None and not actor.has_perm("broadcasts.change_broadcast"):
        raise ApplicationError(NOT_EDITOR)
    broadcast = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
    if broadcast.status not in EDITABLE:
        raise ApplicationError(NOT_EDITABLE.format(status=broadcast.get_status_display()))
    fields: dict[str, Any] = {
        "title": title,
        "priority": priority,
        "languages": None if languages is None else list(languages),
        "tags": None if tags is None else list(tags),
        "buttons": None if buttons is None else list(buttons),
        "media": media,
        "media_kind": media_kind,
        "wa_template_name": wa_template_name,
        "wa_template_language": wa_template_language,
        "wa_template_params": None if wa_template_params is None else list(wa_template_params),
    }
    before = broadcast_content(broadcast)
    send_at_before = broadcast.scheduled_at
    for key, value in fields.items():
        if value is not None:
            setattr(broadcast, key, value)
    if not isinstance(scheduled_at, Keep):
        broadcast.scheduled_at = scheduled_at
    broadcast.save()
    if channels is not None:
        broadcast.channels.set(list(channels))
    if districts is not None:
        broadcast.districts.set(list(districts))
    if variants is not None:
        _set_variants(broadcast, variants, subjects or {})
    after = broadcast_content(broadcast)
    aspects = [str(aspect) for aspect in after if after[aspect] != before[aspect]]
    changed = bool(aspects)
    if changed:
        broadcast.revision += 1
        broadcast.save(update_fields=["revision"])
        BroadcastEdit.objects.create(
            broadcast=broadcast, editor=actor, status=broadcast.status, revision=broadcast.revision, changed=aspects
        )
    edit_details = {"changed": aspects, "revision": broadcast.revision}
    if changed and broadcast.status in (S.APPROVED, S.SCHEDULED):
        sending.unschedule(broadcast)
        transition(
            broadcast,
            S.SUBMITTED,
            actor,
            meta,
            action="broadcast.reopened",
            details={"reason": "content changed after approval", **edit_details},
        )
        broadcast.approved_by, broadcast.approved_at, broadcast.approved_content_hash = None, None, ""
        broadcast.save(update_fields=["approved_by", "approved_at", "approved_content_hash"])
        notifications.notify_approvers(broadcast)
    elif changed and broadcast.status == S.REJECTED:
        transition(broadcast, S.DRAFT, actor, meta, action="broadcast.reopened", details=edit_details)
    elif changed:
        audit_log(action="broadcast.edited", actor=actor, target=broadcast, meta=meta, details=edit_details)
    if not changed and broadcast.status in (S.APPROVED, S.SCHEDULED) and broadcast.scheduled_at != send_at_before:
        # only the send time moved: the approval stands, the start follows the new time
        audit_log(
            action="broadcast.rescheduled",
            actor=actor,
            target=broadcast,
            meta=meta,
            details={
                "from": send_at_before.isoformat() if send_at_before else None,
                "to": broadcast.scheduled_at.isoformat() if broadcast.scheduled_at else None,
            },
        )
        sending.schedule_start(broadcast, actor, meta)
    return broadcast
