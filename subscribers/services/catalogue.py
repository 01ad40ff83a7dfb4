"""Tenant-defined lists that subscriptions refer to: districts, posters, consent texts."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils.text import slugify
from django.utils.translation import gettext_noop

from accounts.models import User
from accounts.services import audit_log
from channels.keywords import RESERVED_KEYS, match_key, normalise
from channels.models import Channel
from channels.selectors import channel_keyword_owner
from core.errors import ApplicationError
from messengers.adapters.base import Provider
from messengers.models import Connection
from subscribers import links, qr
from subscribers.models import ConsentText, District, Language, Poster
from subscribers.selectors import POSTER_PROVIDERS, PROVIDER_LABELS

DISTRICT_NAME_MISSING = gettext_noop("Enter the district's name.")
DISTRICT_SLUG_TAKEN = gettext_noop("Another district already uses the short name “{slug}”.")
DISTRICT_NAME_TAKEN = gettext_noop("“{name}” is already the name or an alias of the district “{district}”.")
POSTER_PROVIDER_UNKNOWN = gettext_noop("Unknown messenger “{provider}” for a poster; choose one of: {choices}.")
# Shown in the admin form too, hence translated (staff read the admin in German or English).
POSTER_CHANNEL_NOT_PUBLIC = gettext_noop(
    "The channel “{channel}” is not public and active; posters are only for channels citizens can join."
)
POSTER_NO_CONNECTION = gettext_noop(
    "The channel “{channel}” has no active {messenger} connection, so a {messenger} QR code would lead nowhere. "
    "Add the channel to an active {messenger} connection (Messenger connections) or choose “subscribe page”."
)
POSTER_NO_PUBLIC_ADDRESS = gettext_noop(
    "The {messenger} connection of the channel “{channel}” has no usable public address (number or @username), "
    "so a QR code cannot open it. Enter the public address in the connection or choose “subscribe page”."
)
CONSENT_TEXT_EMPTY = gettext_noop("The consent text must not be empty.")


def _aliases(values: Iterable[str] | str) -> list[str]:
    raw = values.replace(";", ",").split(",") if isinstance(values, str) else list(values)
    return list(dict.fromkeys(alias for alias in (normalise(v) for v in raw) if alias))


def _check_district_names(name: str, aliases: list[str], exclude_pk: int | None) -> None:
    keys = {match_key(name)} | {match_key(a) for a in aliases}
    for district in District.objects.exclude(pk=exclude_pk) if exclude_pk else District.objects.all():
        taken = {match_key(district.name)} | {match_key(a) for a in district.aliases}
        clash = keys & taken
        if clash:
            raise ApplicationError(DISTRICT_NAME_TAKEN, params=dict(name=sorted(clash)[0], district=district.name))


@transaction.atomic
def district_create(
    *, name: str, slug: str = "", aliases: Iterable[str] | str = (), position: int = 0, actor: User | None = None
) -> District:
    name = name.strip()
    if not name:
        raise ApplicationError(DISTRICT_NAME_MISSING)
    slug = slugify(slug or normalise(name).lower()) or "district"
    if District.objects.filter(slug=slug).exists():
        raise ApplicationError(DISTRICT_SLUG_TAKEN, params=dict(slug=slug))
    cleaned = _aliases(aliases)
    _check_district_names(name, cleaned, None)
    district = District.objects.create(name=name, slug=slug, aliases=cleaned, position=position)
    audit_log(action="district.created", actor=actor, target=district)
    return district


@transaction.atomic
def district_update(
    *, district: District, name: str, slug: str, aliases: Iterable[str] | str, position: int,
    actor: User | None = None,
) -> District:  # fmt: skip
    name = name.strip()
    if not name:
        raise ApplicationError(DISTRICT_NAME_MISSING)
    slug = slugify(slug or normalise(name).lower()) or district.slug
    if District.objects.filter(slug=slug).exclude(pk=district.pk).exists():
        raise ApplicationError(DISTRICT_SLUG_TAKEN, params=dict(slug=slug))
    cleaned = _aliases(aliases)
    _check_district_names(name, cleaned, district.pk)
    district.name, district.slug, district.aliases, district.position = name, slug, cleaned, position
    district.save()
    audit_log(action="district.updated", actor=actor, target=district)
    return district


def poster_target_check(*, channel: Channel, provider: str) -> None:
    """Raise ApplicationError unless a poster of `provider` for `channel` can open something: a
    public, active channel, and for a messenger an active connection of it carrying the channel
    with a public address the QR code can point at ("web" opens the subscribe page)."""
    if provider not in POSTER_PROVIDERS:
        raise ApplicationError(
            POSTER_PROVIDER_UNKNOWN, params=dict(provider=provider, choices=", ".join(POSTER_PROVIDERS))
        )
    if not (channel.is_public and channel.is_active):
        raise ApplicationError(POSTER_CHANNEL_NOT_PUBLIC, params=dict(channel=channel.name))
    if provider == "web":
        return
    messenger = PROVIDER_LABELS[Provider(provider)]
    if not channel.connections.filter(provider=provider, status=Connection.Status.ACTIVE).exists():
        raise ApplicationError(POSTER_NO_CONNECTION, params=dict(channel=channel.name, messenger=messenger))
    if not qr.qr_payload(channel=channel, provider=provider):
        raise ApplicationError(POSTER_NO_PUBLIC_ADDRESS, params=dict(channel=channel.name, messenger=messenger))


@transaction.atomic
def poster_create(*, channel: Channel, provider: str, label: str = "", actor: User | None = None) -> Poster:
    """A poster with a fresh code (never a command word or channel keyword, never reused)."""
    poster_target_check(channel=channel, provider=provider)
    for _ in range(50):
        code = links.new_poster_code()
        key = match_key(code)
        if key in RESERVED_KEYS or channel_keyword_owner(key) is not None:
            continue
        try:
            with transaction.atomic():
                poster = Poster.objects.create(code=code, channel=channel, provider=provider, label=label.strip()[:120])
        except IntegrityError:
            continue
        audit_log(action="poster.created", actor=actor, target=poster, details={"channel": channel.slug})
        return poster
    raise ApplicationError(gettext_noop("Could not find a free poster code; please try again."))


@transaction.atomic
def consent_text_create(
    *, text: str, language: str, channel: Channel | None = None, actor: User | None = None
) -> ConsentText:
    """A new version of a consent text. Texts are never edited: events point at the version the
    person saw."""
    text = text.strip()
    if not text:
        raise ApplicationError(CONSENT_TEXT_EMPTY)
    if language not in Language.values:
        raise ApplicationError(f"Unknown language “{language}”.")
    latest = ConsentText.objects.filter(channel=channel, language=language)
    version = (latest.aggregate(v=Max("version"))["v"] or 0) + 1
    try:
        with transaction.atomic():
            created = ConsentText.objects.create(channel=channel, language=language, version=version, text=text)
    except IntegrityError:
        raise ApplicationError(
            gettext_noop("Someone saved a new version of this text at the same time; please try again.")
        ) from None
    audit_log(action="consent_text.created", actor=actor, target=created, details={"version": version})
    return created
