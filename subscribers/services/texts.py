"""Writes of a tenant's own wording of citizen-facing texts (TextOverride; the lookup and why
it is not gettext: subscribers.texts). A wording must keep to the placeholders of the text it
replaces, so a reply never fails (or shows "{channel}") in the worker."""

from __future__ import annotations

import string

from django.db import transaction
from django.utils.translation import gettext_lazy

from accounts.models import User
from accounts.services import audit_log
from channels.models import Channel
from core.errors import ApplicationError
from core.http import RequestMeta
from subscribers import texts
from subscribers.models import TextOverride

# Shown in the admin form, hence translated (staff read the admin in German or English).
TEXT_KEY_NOT_EDITABLE = gettext_lazy("This text cannot be changed here.")
TEXT_LANGUAGE_UNKNOWN = gettext_lazy("Choose German or English.")
TEXT_EMPTY = gettext_lazy("Enter the wording, or delete the entry to use the standard text again.")
TEXT_UNKNOWN_PLACEHOLDERS = gettext_lazy(
    "The wording uses placeholders this text does not have: %(unknown)s. Possible: %(allowed)s."
)
TEXT_BROKEN_BRACES = gettext_lazy(
    "The wording has a curly brace without its partner. Write placeholders like {channel}; write a brace as {{ or }}."
)


def text_override_check(*, key: str, language: str, text: str) -> None:
    """Refuse a wording that cannot replace the text (ApplicationError with a message for staff)."""
    if key not in texts.OVERRIDABLE_KEYS:
        raise ApplicationError(str(TEXT_KEY_NOT_EDITABLE))
    if language not in texts.TEXTS:
        raise ApplicationError(str(TEXT_LANGUAGE_UNKNOWN))
    if not text.strip():
        raise ApplicationError(str(TEXT_EMPTY))
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError:
        raise ApplicationError(str(TEXT_BROKEN_BRACES)) from None
    allowed = texts.placeholders(key)
    unknown = sorted(used - allowed)
    if unknown:
        raise ApplicationError(
            str(TEXT_UNKNOWN_PLACEHOLDERS)
            % {
                "unknown": ", ".join(f"{{{name}}}" for name in unknown),
                "allowed": ", ".join(f"{{{name}}}" for name in sorted(allowed)) or "–",
            }
        )


@transaction.atomic
def text_override_save(
    *,
    key: str,
    language: str,
    text: str,
    channel: Channel | None = None,
    override: TextOverride | None = None,
    actor: User | None = None,
    meta: RequestMeta | None = None,
) -> TextOverride:
    """Set the tenant's wording of `key` in `language` (for one channel, or for every channel).
    `override`: the entry being edited (its key, language or channel may change)."""
    text = text.strip()
    text_override_check(key=key, language=language, text=text)
    if override is None:
        override = TextOverride()
    override.key, override.language, override.channel, override.text = key, language, channel, text
    override.full_clean()
    override.save()
    audit_log(
        action="subscribers.text_overridden", actor=actor, target=override, meta=meta,
        details={"key": key, "language": language, "channel": channel.pk if channel is not None else None},
    )  # fmt: skip
    return override


@transaction.atomic
def text_override_delete(*, override: TextOverride, actor: User | None = None, meta: RequestMeta | None = None) -> None:
    """Back to the built-in text."""
    audit_log(
        action="subscribers.text_override_deleted", actor=actor, target=override, meta=meta,
        details={"key": override.key, "language": override.language, "channel": override.channel_id},
    )  # fmt: skip
    override.delete()
