"""Writes for users, roles and the audit log. Every change to a user's roles is audit-logged."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress
from allauth.account.utils import user_pk_to_url_str
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Model, Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_noop

from accounts import roles
from accounts.models import API_SCOPES, ApiKey, AuditEvent, IdempotencyRecord, User
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


# --------------------------------------------------------------------------------------------
# API keys (the REST API, issue 13). The secret is shown once: `api_key_create` returns it and
# stores only its SHA-256; the prefix stays visible so people can tell keys apart.
# --------------------------------------------------------------------------------------------
API_KEY_UNKNOWN_SCOPE = gettext_noop("Unknown scope: {scope}.")
API_KEY_NO_SCOPE = gettext_noop("Choose at least one scope.")
API_KEY_MARK = "mnl"


def api_key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def api_key_create(
    *,
    name: str,
    scopes: list[str],
    actor: User,
    expires_at: datetime | None = None,
    rate_limit: int = 120,
    meta: RequestMeta | None = None,
) -> tuple[ApiKey, str]:
    """A new key acting as `actor` (an admin); returns it with the secret, which nobody sees again."""
    unknown = [scope for scope in scopes if scope not in API_SCOPES]
    if unknown:
        raise ApplicationError(API_KEY_UNKNOWN_SCOPE, params={"scope": unknown[0]})
    if not scopes:
        raise ApplicationError(API_KEY_NO_SCOPE)
    prefix = f"{API_KEY_MARK}_{secrets.token_hex(4)}"
    secret = f"{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        name=name.strip()[:100], prefix=prefix, secret_hash=api_key_hash(secret), user=actor,
        scopes=sorted(set(scopes)), expires_at=expires_at, rate_limit=rate_limit,
    )  # fmt: skip
    key.full_clean()
    key.save()
    audit_log(
        action="api_key.created", actor=actor, target=key, meta=meta,
        details={"prefix": prefix, "scopes": key.scopes, "expires_at": expires_at},
    )  # fmt: skip
    return key, secret


@transaction.atomic
def api_key_revoke(*, key: ApiKey, actor: User | None, meta: RequestMeta | None = None) -> bool:
    """Revoke a key at once (its next request gets 401); False if it was revoked already."""
    changed = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if changed:
        key.refresh_from_db(fields=["revoked_at"])
        audit_log(action="api_key.revoked", actor=actor, target=key, meta=meta, details={"prefix": key.prefix})
    return bool(changed)


LAST_USED_PRECISION = timedelta(minutes=1)


def api_key_authenticate(secret: str) -> ApiKey | None:
    """The usable key for `secret` (not revoked, not expired), its last use noted to the minute
    (one write per key and minute, not per request); None for anything else."""
    mark, _sep, rest = secret.partition("_")
    prefix = f"{mark}_{rest.partition('_')[0]}"
    if mark != API_KEY_MARK or len(prefix) > 16 or len(secret) > 200:
        return None
    key = ApiKey.objects.select_related("user").filter(prefix=prefix).first()
    if key is None or not hmac.compare_digest(key.secret_hash, api_key_hash(secret)):
        return None
    now = timezone.now()
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return None
    if not key.user.is_active:
        return None
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


# --------------------------------------------------------------------------------------------
# Idempotent creates (R7). The caller runs `idempotency_run` inside its request; the unique
# (owner, key) row is inserted first, inside the same transaction as the create, so a concurrent
# request with the same key waits on the index until the first commits, then replays its answer.
# --------------------------------------------------------------------------------------------
IDEMPOTENCY_KEY_REUSED = gettext_noop(
    "This Idempotency-Key was already used with a different request; use a new key for a new request."
)
IDEMPOTENCY_KEY_TOO_LONG = gettext_noop("The Idempotency-Key header may have at most 255 characters.")
IDEMPOTENCY_RETENTION = timedelta(days=1)


class IdempotencyConflictError(ApplicationError):
    """Same key, other request: the client must not get the first answer (HTTP 409)."""

    status_code = 409
    code = "idempotency_conflict"


def idempotency_run(
    *, owner: str, key: str, request_hash: str, create: Callable[[], tuple[int, Any]]
) -> tuple[int, Any, bool]:
    """Run `create` (returns status and JSON-safe body) at most once per (owner, key).

    Returns (status, body, replayed). If `create` raises, nothing is kept and a retry runs it
    again; only successful answers are replayed."""
    if len(key) > 255:
        raise ApplicationError(IDEMPOTENCY_KEY_TOO_LONG)
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    owner=owner, key=key, request_hash=request_hash, status_code=0, response={}
                )
        except IntegrityError:
            existing = IdempotencyRecord.objects.get(owner=owner, key=key)
            if existing.request_hash != request_hash:
                raise IdempotencyConflictError(IDEMPOTENCY_KEY_REUSED) from None
            return existing.status_code, existing.response, True
        status, body = create()
        record.status_code, record.response = status, body
        record.save(update_fields=["status_code", "response"])
        return status, body, False


def idempotency_purge(*, now: datetime | None = None) -> int:
    """Forget idempotency records older than a day (clients retry within minutes)."""
    cutoff = (now or timezone.now()) - IDEMPOTENCY_RETENTION
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
