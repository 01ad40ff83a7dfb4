"""Small typed helpers for views and admin code."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.http import HttpRequest

if TYPE_CHECKING:
    from accounts.models import User


def request_user(request: HttpRequest) -> User | None:
    """The signed-in user of a request, or None (typed as our User model)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return cast("User", user)
