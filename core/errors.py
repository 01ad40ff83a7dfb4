"""Errors that services raise and every interface (admin, commands, views) turns into a message."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A business rule said no. `message` is safe to show to the user and says what to do next."""

    def __init__(self, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class TenantContextError(RuntimeError):
    """Tenant work was attempted outside a tenant schema (a programming error, never user input)."""
