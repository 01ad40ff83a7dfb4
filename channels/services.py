"""Writes of channels: create and update (with keyword normalisation) and alarm state changes.

Keywords are stored normalised (channels.keywords.normalise) and must be unique across all
channels of the tenant by their match key, so "START SÜD" can only ever mean one channel.
Alarm state changes are recorded (AlarmStateChange), audit-logged and handed to every hook in
settings.ALARM_STATE_HOOKS inside the same transaction (broadcasts proposes the draft there).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.text import slugify
from django.utils.translation import gettext_noop

from accounts.models import User
from accounts.services import audit_log
from channels.keywords import RESERVED_KEYS, match_key, normalise
from channels.models import AlarmStateChange, Channel
from channels.selectors import channel_keyword_owner
from core.errors import ApplicationError
from core.http import RequestMeta
from messengers.models import Connection
from messengers.outgoing.services import outgoing_event_emit

KEYWORD_NOT_ONE_WORD = gettext_noop(
    "A keyword is one word of letters and digits: “{keyword}” is not (try “{suggestion}”)."
)
KEYWORD_TOO_LONG = gettext_noop("The keyword “{keyword}” is longer than 40 characters.")
KEYWORD_RESERVED = gettext_noop("“{keyword}” is a command word (START, STOP, HILFE …) and cannot be a channel keyword.")
KEYWORD_TAKEN = gettext_noop("The keyword “{keyword}” is already used by the channel “{channel}”.")
SLUG_TAKEN = gettext_noop("The short name “{slug}” is already used by another channel.")
SLUG_INVALID = gettext_noop("The short name may contain only letters, digits, hyphens and underscores.")
NOT_AN_ALARM_CHANNEL = gettext_noop("“{channel}” is not an alarm channel; only alarm channels have a state.")
UNKNOWN_ALARM_STATE = gettext_noop("Unknown alarm state “{state}”. Choose one of: {choices}.")

EDITABLE_FIELDS = frozenset(
    {
        "name", "slug", "description", "keywords", "icon", "color", "is_public", "is_active",
        "requires_approval", "default_priority", "welcome_text_de", "welcome_text_en", "position",
        "is_alarm", "alarm_text_start", "alarm_text_update", "alarm_text_end",
    }
)  # fmt: skip


def channel_keywords_clean(keywords: Iterable[str] | str, *, exclude_pk: int | None = None) -> list[str]:
    """Normalise, de-duplicate and check keywords; raises ApplicationError with a clear message."""
    raw = keywords.replace(";", ",").split(",") if isinstance(keywords, str) else list(keywords)
    cleaned: list[str] = []
    seen: set[str] = set()
    for item in raw:
        keyword = normalise(item)
        if not keyword:
            continue
        if " " in keyword:
            raise ApplicationError(
                KEYWORD_NOT_ONE_WORD.format(keyword=item.strip(), suggestion=keyword.replace(" ", ""))
            )
        if len(keyword) > 40:
            raise ApplicationError(KEYWORD_TOO_LONG, params=dict(keyword=keyword))
        key = match_key(keyword)
        if key in RESERVED_KEYS:
            raise ApplicationError(KEYWORD_RESERVED, params=dict(keyword=keyword))
        if key in seen:
            continue
        owner = channel_keyword_owner(key, exclude_pk=exclude_pk)
        if owner is not None:
            raise ApplicationError(KEYWORD_TAKEN, params=dict(keyword=keyword, channel=owner.name))
        seen.add(key)
        cleaned.append(keyword)
    return cleaned


def _slug_for(name: str, slug: str, exclude_pk: int | None) -> str:
    taken = Channel.objects.exclude(pk=exclude_pk) if exclude_pk is not None else Channel.objects.all()
    if slug:
        slug = slug.strip()
        if slugify(slug) != slug.lower() or not slug:
            raise ApplicationError(SLUG_INVALID)
        slug = slug.lower()
        if taken.filter(slug=slug).exists():
            raise ApplicationError(SLUG_TAKEN, params=dict(slug=slug))
        return slug
    base = (slugify(normalise(name).lower().replace(" ", "-")) or "channel")[:50]
    candidate, number = base, 2
    while taken.filter(slug=candidate).exists():
        candidate, number = f"{base}-{number}", number + 1
    return candidate


def _full_clean(channel: Channel) -> None:
    try:
        channel.full_clean(exclude=["connections"])
    except ValidationError as exc:
        messages = [f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items()]
        raise ApplicationError("; ".join(messages)) from exc


def _connection_list(connections: Iterable[Connection | int]) -> list[Connection]:
    ids = [c.pk if isinstance(c, Connection) else int(c) for c in connections]
    found = list(Connection.objects.filter(pk__in=ids))
    if len(found) != len(set(ids)):
        raise ApplicationError(gettext_noop("One of the chosen messenger connections does not exist."))
    return found


def _given(**values: object) -> dict[str, object]:
    """The settings a caller passed (None means "not given": the model's default, or unchanged)."""
    return {key: value for key, value in values.items() if value is not None}


@transaction.atomic
def channel_create(
    *,
    name: str,
    slug: str = "",
    keywords: Sequence[str] | str = (),
    connections: Iterable[Connection | int] = (),
    description: str | None = None,
    icon: str | None = None,
    color: str | None = None,
    is_public: bool | None = None,
    is_active: bool | None = None,
    requires_approval: bool | None = None,
    default_priority: str | None = None,
    welcome_text_de: str | None = None,
    welcome_text_en: str | None = None,
    position: int | None = None,
    is_alarm: bool | None = None,
    alarm_text_start: str | None = None,
    alarm_text_update: str | None = None,
    alarm_text_end: str | None = None,
    actor: User | None = None,
    meta: RequestMeta | None = None,
) -> Channel:
    """Create a channel; settings not given keep the model's defaults."""
    fields = _given(
        description=description, icon=icon, color=color, is_public=is_public, is_active=is_active,
        requires_approval=requires_approval, default_priority=default_priority, welcome_text_de=welcome_text_de,
        welcome_text_en=welcome_text_en, position=position, is_alarm=is_alarm, alarm_text_start=alarm_text_start,
        alarm_text_update=alarm_text_update, alarm_text_end=alarm_text_end,
    )  # fmt: skip
    channel = Channel(
        name=name.strip(), slug=_slug_for(name, slug, None), keywords=channel_keywords_clean(keywords), **fields
    )
    _full_clean(channel)
    channel.save()
    channel.connections.set(_connection_list(connections))
    audit_log(
        action="channel.created", actor=actor, target=channel, meta=meta,
        details={"keywords": channel.keywords, "public": channel.is_public, "alarm": channel.is_alarm},
    )  # fmt: skip
    return channel


@transaction.atomic
def channel_update(
    *,
    channel: Channel,
    actor: User | None = None,
    meta: RequestMeta | None = None,
    connections: Iterable[Connection | int] | None = None,
    name: str | None = None,
    slug: str | None = None,
    keywords: Sequence[str] | str | None = None,
    description: str | None = None,
    icon: str | None = None,
    color: str | None = None,
    is_public: bool | None = None,
    is_active: bool | None = None,
    requires_approval: bool | None = None,
    default_priority: str | None = None,
    welcome_text_de: str | None = None,
    welcome_text_en: str | None = None,
    position: int | None = None,
    is_alarm: bool | None = None,
    alarm_text_start: str | None = None,
    alarm_text_update: str | None = None,
    alarm_text_end: str | None = None,
) -> Channel:
    """Change the given settings (None: unchanged; keywords are re-checked); returns the channel."""
    fields = _given(
        name=name, slug=slug, keywords=keywords, description=description, icon=icon, color=color,
        is_public=is_public, is_active=is_active, requires_approval=requires_approval,
        default_priority=default_priority, welcome_text_de=welcome_text_de, welcome_text_en=welcome_text_en,
        position=position, is_alarm=is_alarm, alarm_text_start=alarm_text_start,
        alarm_text_update=alarm_text_update, alarm_text_end=alarm_text_end,
    )  # fmt: skip
    if keywords is not None:
        fields["keywords"] = channel_keywords_clean(keywords, exclude_pk=channel.pk)
    if slug is not None and slug != channel.slug:
        fields["slug"] = _slug_for(channel.name, slug, channel.pk)
    changed = sorted(key for key, value in fields.items() if getattr(channel, key) != value)
    for key in changed:
        setattr(channel, key, fields[key])
    if changed:
        _full_clean(channel)
        channel.save(update_fields=[*changed, "updated_at"])
    connections_changed = False
    if connections is not None:
        wanted = _connection_list(connections)
        before = set(channel.connections.values_list("pk", flat=True))
        if before != {c.pk for c in wanted}:
            channel.connections.set(wanted)
            connections_changed = True
    if changed or connections_changed:
        audit_log(
            action="channel.updated", actor=actor, target=channel, meta=meta,
            details={"fields": changed + (["connections"] if connections_changed else [])},
        )  # fmt: skip
    return channel


@transaction.atomic
def channel_set_alarm_state(
    *,
    channel: Channel,
    state: str,
    actor: User | None = None,
    actor_label: str = "",
    note: str = "",
    meta: RequestMeta | None = None,
) -> AlarmStateChange:
    """Set an alarm channel's state. The same state again is recorded as an update (an extended
    alarm, new values) and keeps the time the state began."""
    try:
        new_state = Channel.AlarmState(state)
    except ValueError:
        raise ApplicationError(
            UNKNOWN_ALARM_STATE.format(state=state, choices=", ".join(Channel.AlarmState.values))
        ) from None
    locked = Channel.objects.select_for_update().get(pk=channel.pk)
    if not locked.is_alarm:
        raise ApplicationError(NOT_AN_ALARM_CHANNEL, params=dict(channel=locked.name))
    if actor is not None and not actor.is_authenticated:
        actor = None
    label = (actor_label or (actor.get_username() if actor is not None else "system"))[:200]
    change = AlarmStateChange.objects.create(
        channel=locked, from_state=locked.alarm_state, to_state=new_state.value, changed_by=actor,
        changed_by_label=label, note=note.strip()[:300],
    )  # fmt: skip
    if locked.alarm_state != new_state.value or locked.alarm_state_changed_at is None:
        locked.alarm_state = new_state.value
        locked.alarm_state_changed_at = change.at or timezone.now()
        locked.save(update_fields=["alarm_state", "alarm_state_changed_at", "updated_at"])
    channel.alarm_state, channel.alarm_state_changed_at = locked.alarm_state, locked.alarm_state_changed_at
    audit_log(
        action="channel.alarm_state_changed", actor=actor, actor_label=label, target=locked, meta=meta,
        details={"from": change.from_state, "to": change.to_state, "note": change.note},
    )  # fmt: skip
    outgoing_event_emit(
        event_type="alarm.state_changed",
        data={
            "channel": {"id": locked.pk, "slug": locked.slug, "name": locked.name},
            "from": change.from_state, "to": change.to_state, "note": change.note, "changed_by": label,
            "changed_at": change.at,
        },
    )  # fmt: skip
    for path in settings.ALARM_STATE_HOOKS:
        import_string(path)(channel=locked, change=change, actor=actor)
    return change
