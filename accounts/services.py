"""Writes for users, roles and the audit log. Every change to a user's roles is audit-logged."""

from __future__ import annotations

import logging
from typing import Any

from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress
from allauth.account.utils import user_pk_to_url_str
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Model, Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_noop

from accounts import roles
from accounts.models import AuditEvent, User
from core.errors import ApplicationError
from core.http import RequestMeta
from core.tenancy import connection
from core.types import UNCHANGED, Unchanged

logger = logging.getLogger(__name__)

USER_EMAIL_TAKEN = gettext_noop("A user with this e-mail address already exists.")
USER_USERNAME_TAKEN = gettext_noop("A user with this username already exists.")
UNKNOWN_ROLE = gettext_noop("Unknown role: {role}. Choose from: {choices}.")


def audit_log(
    *,
    action: str,
    actor: User | None = None,
    actor_label: str = "",
    target: Model | None = None,
    target_label: str = "",
    details: dict[str, Any] | None = None,
    meta: RequestMeta | None = None,
) -> AuditEvent:
    """Append one event to the audit log of the current schema (`meta`: the client's address)."""
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    return AuditEvent.objects.create(
        actor=actor,
        actor_label=actor_label or (actor.get_username() if actor else "system"),
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=(target_label or str(target))[:300] if target is not None else target_label[:300],
        details=details or {},
        ip_address=meta.ip if meta else None,
    )


def _resolve_permissions(names: set[str]) -> list[Permission]:
    query = Q(pk__in=[])
    for name in names:
        app_label, _, codename = name.partition(".")
        if codename == "*":
            query |= Q(content_type__app_label=app_label)
        else:
            query |= Q(content_type__app_label=app_label, codename=codename)
    return list(Permission.objects.filter(query))


@transaction.atomic
def roles_sync() -> dict[str, int]:
    """Create the role groups in the current schema and give each exactly its permissions."""
    counts: dict[str, int] = {}
    for role, names in roles.role_permissions().items():
        group, _ = Group.objects.get_or_create(name=role)
        permissions = _resolve_permissions(names)
        group.permissions.set(permissions)
        counts[role] = len(permissions)
    return counts


def _groups_for(role_names: list[str]) -> list[Group]:
    unknown = [r for r in role_names if r not in roles.ROLES]
    if unknown:
        raise ApplicationError(UNKNOWN_ROLE, params=dict(role=", ".join(unknown), choices=", ".join(roles.ROLES)))
    groups = list(Group.objects.filter(name__in=role_names))
    if len(groups) != len(set(role_names)):
        roles_sync()
        groups = list(Group.objects.filter(name__in=role_names))
    return groups


@transaction.atomic
def user_create(
    *,
    username: str,
    email: str,
    role_names: list[str],
    first_name: str = "",
    last_name: str = "",
    password: str | None = None,
    is_demo: bool = False,
    actor: User | None = None,
    meta: RequestMeta | None = None,
) -> User:
    """Create a staff user of the current schema. Without a password the account can only be
    entered through a set-password link (see user_password_setup_link)."""
    email = email.strip().lower()
    if email and User.objects.filter(email__iexact=email).exists():
        raise ApplicationError(USER_EMAIL_TAKEN)
    if User.objects.filter(username__iexact=username).exists():
        raise ApplicationError(USER_USERNAME_TAKEN)
    user = User(
        username=username, email=email, first_name=first_name, last_name=last_name, is_staff=True, is_demo=is_demo
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean(exclude=["password"])
    user.save()
    user.groups.set(_groups_for(role_names))
    if email:
        EmailAddress.objects.update_or_create(user=user, email=email, defaults={"primary": True, "verified": True})
    audit_log(action="user.created", actor=actor, target=user, details={"roles": sorted(role_names)}, meta=meta)
    return user


@transaction.atomic
def user_set_roles(*, user: User, role_names: list[str], actor: User | None, meta: RequestMeta | None = None) -> bool:
    """Replace a user's roles; returns whether anything changed (and only then logs)."""
    before = sorted(user.groups.filter(name__in=roles.ROLES).values_list("name", flat=True))
    after = sorted(set(role_names))
    if before == after:
        return False
    other_groups = list(user.groups.exclude(name__in=roles.ROLES))
    user.groups.set(_groups_for(after) + other_groups)
    audit_log(
        action="user.roles_changed",
        actor=actor,
        target=user,
        details={"before": before, "after": after},
        meta=meta,
    )
    return True


@transaction.atomic
def user_update(
    *,
    user: User,
    actor: User | None,
    meta: RequestMeta | None = None,
    email: str | Unchanged = UNCHANGED,
    first_name: str | Unchanged = UNCHANGED,
    last_name: str | Unchanged = UNCHANGED,
    is_active: bool | Unchanged = UNCHANGED,
    language: str | Unchanged = UNCHANGED,
) -> User:
    """Change the given fields of a staff user; logs which ones changed."""
    fields: dict[str, Any] = {
        "email": email, "first_name": first_name, "last_name": last_name, "is_active": is_active, "language": language,
    }  # fmt: skip
    changed = {k: v for k, v in fields.items() if v is not UNCHANGED and getattr(user, k) != v}
    if "email" in changed:
        changed["email"] = changed["email"].strip().lower()
        if User.objects.filter(email__iexact=changed["email"]).exclude(pk=user.pk).exists():
            raise ApplicationError(USER_EMAIL_TAKEN)
    for key, value in changed.items():
        setattr(user, key, value)
    if changed:
        user.full_clean(exclude=["password"])
        user.save(update_fields=list(changed))
        audit_log(action="user.updated", actor=actor, target=user, details={"fields": sorted(changed)}, meta=meta)
    return user


def user_password_setup_link(*, user: User, base_url: str) -> str:
    """A link that lets the user choose a password, on `base_url` (the domain's absolute base
    URL, e.g. tenants.selectors.tenant_base_url). It stops working once it has been used (the
    token covers the password hash) or after PASSWORD_RESET_TIMEOUT."""
    path = reverse(
        "account_reset_password_from_key",
        kwargs={"uidb36": user_pk_to_url_str(user), "key": default_token_generator.make_token(user)},
        urlconf=settings.ROOT_URLCONF if connection.schema_name != "public" else settings.PUBLIC_SCHEMA_URLCONF,
    )
    return base_url + path


def user_language(user: User) -> str:
    """The language to write to `user` in: their own, else the tenant's default, else German."""
    tenant = getattr(connection, "tenant", None)
    return user.language or getattr(tenant, "default_language", "") or settings.LANGUAGE_CODE


def user_send_password_link(*, user: User, base_url: str, actor: User | None, meta: RequestMeta | None = None) -> bool:
    """Mail `user` a link to choose a password, in the user's language; audit-logged."""
    link = user_password_setup_link(user=user, base_url=base_url)
    with translation.override(user_language(user)):
        subject = gettext("Choose your password")
        body = gettext(
            "Hello,\n\nchoose your password for the newsletter administration here (the link works once):\n\n%(link)s\n"
        ) % {"link": link}
    sent = send_mail(subject, body, None, [user.email], fail_silently=True) == 1
    audit_log(action="user.password_link_sent", actor=actor, target=user, meta=meta)
    return sent


@transaction.atomic
def user_dismiss_first_steps(*, user: User) -> None:
    """Hide the "first steps" list of the admin start page for this user (idempotent)."""
    if user.first_steps_dismissed_at is None:
        user.first_steps_dismissed_at = timezone.now()
        user.save(update_fields=["first_steps_dismissed_at"])
