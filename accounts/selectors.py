"""Reads about users and roles."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from accounts import roles
from accounts.models import User


def user_role_names(user: User) -> set[str]:
    cached: set[str] | None = getattr(user, "_role_names_cache", None)
    if cached is None:
        cached = set(user.groups.filter(name__in=roles.ROLES).values_list("name", flat=True))
        user._role_names_cache = cached  # type: ignore[attr-defined]
    return cached


def user_requires_mfa(user: User | AnonymousUser) -> bool:
    """Admins, approvers and every operator (superuser) must use two-factor authentication."""
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return bool(user_role_names(user) & roles.MFA_REQUIRED_ROLES)


def user_may_skip_mfa(user: User) -> bool:
    """Only seeded demo users, and only while DEMO_MODE is on (never in production settings)."""
    return bool(settings.DEMO_MODE and getattr(user, "is_demo", False))
