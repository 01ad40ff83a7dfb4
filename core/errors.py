"""Errors that services raise and every interface (admin, commands, views) turns into a message."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext


class ApplicationError(Exception):
    """A business rule said no. The message is safe to show to the user and says what to do next.

    Services raise it with an English template (a module constant marked with gettext_noop, so
    tests can name it) and its `params`. `message` is the English text (logs, commands, tests);
    `localized` is the same text in the active language, for the admin and the public pages."""

    def __init__(
        self, message: str, *, params: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        self.template = message
        self.params = params or {}
        self.message = message.format(**self.params) if params else message
        super().__init__(self.message)
        self.extra = extra or {}

    @property
    def localized(self) -> str:
        """The message in the active language (English where the catalogue has no translation)."""
        translated = gettext(self.template) if self.template else self.template
        if not self.params:
            return translated
        try:
            return translated.format(**self.params)
        except (KeyError, IndexError, ValueError):  # a translation that lost a placeholder
            return self.message


class TenantContextError(RuntimeError):
    """Tenant work was attempted outside a tenant schema (a programming error, never user input)."""
