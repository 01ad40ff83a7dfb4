"""Reads about users and roles."""

from __future__ import annotations

import unicodedata
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db.models import Q
from django.utils import timezone
from django.utils.text import capfirst

from accounts import roles
from accounts.models import AuditEvent, User


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


def user_id_for_login(identifiers: list[str]) -> int | None:
    """The one user of the current schema that any of these login identifiers (username or
    e-mail address as typed, any case) can name, or None when none or several do. Login
    throttling counts failures per user with this, so that "anna", "ANNA" and "anna@example.org"
    are the same account."""
    values = {unicodedata.normalize("NFKC", value).strip() for value in identifiers if value and value.strip()}
    if not values:
        return None
    names, emails = Q(pk__in=[]), Q(pk__in=[])
    for value in values:
        names |= Q(username__iexact=value) | Q(email__iexact=value)
        emails |= Q(email__iexact=value)
    ids = set(User.objects.filter(names).values_list("pk", flat=True)[:2])
    ids |= set(EmailAddress.objects.filter(emails).values_list("user_id", flat=True)[:2])
    return ids.pop() if len(ids) == 1 else None


def account_rollup() -> dict[str, int]:
    """Per-tenant figures for the operator overview (analytics.services.ROLLUP_SOURCES)."""
    return {
        "users": User.objects.filter(is_active=True).count(),
        "audit_events_24h": AuditEvent.objects.filter(at__gte=timezone.now() - timedelta(days=1)).count(),
    }


def audit_history(*, target_type: str, target_id: str, limit: int = 30) -> list[AuditEvent]:
    """The newest audit events about one object (say, a broadcast's history on its page);
    show each with `get_action_display()`, the action's label in the active language."""
    return list(AuditEvent.objects.filter(target_type=target_type, target_id=target_id).order_by("-at", "-id")[:limit])


def audit_target_kind(target_type: str) -> str:
    """The name of the kind of object an audit event is about ("accounts.user" → "Benutzer"),
    or the code for a model that no longer exists."""
    if not target_type:
        return ""
    try:
        model = apps.get_model(target_type)
    except (LookupError, ValueError):
        return target_type
    return str(capfirst(model._meta.verbose_name))
