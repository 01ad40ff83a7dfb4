"""Writes on tenants: onboarding, suspension, branding.

`tenant_onboard` is the one way a tenant comes to exist; the operator admin's form and
`manage.py onboard_tenant` both call it. It runs in one transaction (PostgreSQL DDL is
transactional), so a failure at any step leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps as django_apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop
from django_tenants.utils import get_public_schema_name, schema_context, schema_exists

from accounts import roles
from accounts.models import User
from accounts.services import audit_log, roles_sync, user_create, user_password_setup_link
from core.errors import ApplicationError
from core.http import RequestMeta
from core.middleware import CachedTenantMiddleware
from core.tenancy import connection
from core.types import UNCHANGED, Unchanged
from tenants.models import Domain, Tenant
from tenants.selectors import tenant_base_url

logger = logging.getLogger(__name__)

SCHEMA_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,40}$")
# "branding" is the folder of the logos, which every domain serves (core.views.media): a tenant of
# that name would have its private uploads there.
RESERVED_SCHEMAS = {
    "public", "information_schema", settings.TENANT_BASE_SCHEMA, "admin", "www", "api", "static", "branding",
}  # fmt: skip
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")

SCHEMA_INVALID = gettext_noop(
    "The short name must start with a letter and use only a-z, 0-9 and _ (2-41 characters), e.g. bochum."
)
SCHEMA_RESERVED = gettext_noop("The short name {schema} is reserved; choose another.")
SCHEMA_TAKEN = gettext_noop("A tenant with the short name {schema} already exists.")
DOMAIN_INVALID = gettext_noop("{domain} is not a valid domain name (e.g. bochum.localhost or newsletter.bochum.de).")
DOMAIN_TAKEN = gettext_noop("The domain {domain} already belongs to another tenant.")
EMAIL_INVALID = gettext_noop("{email} is not a valid e-mail address.")
TEMPLATE_MISSING = gettext_noop(
    "The tenant template schema is missing or out of date; run `python manage.py tenant_template` "
    "(make run does this) and try again."
)

ProgressCallback = Callable[[str], None]


@dataclass
class OnboardingResult:
    tenant: Tenant
    domain: Domain
    admin_user: User
    password_link: str
    steps: list[tuple[str, float]] = field(default_factory=list)  # (label in the active language, seconds)

    @property
    def seconds(self) -> float:
        return sum(duration for _, duration in self.steps)

    @property
    def login_url(self) -> str:
        """Where the first admin logs in: the tenant admin on the primary domain."""
        return f"{tenant_base_url(self.domain.domain)}/admin/"


@contextmanager
def _step(label: Any, steps: list[tuple[str, float]], progress: ProgressCallback | None) -> Iterator[None]:
    """Time one step of onboarding; `label` is a lazy translation, read in the active language."""
    name = str(label)
    if progress:
        progress(name)
    started = time.perf_counter()
    yield
    steps.append((name, time.perf_counter() - started))


def _validate(schema_name: str, domain: str, admin_email: str) -> None:
    if not SCHEMA_NAME_RE.match(schema_name):
        raise ApplicationError(SCHEMA_INVALID)
    if schema_name in RESERVED_SCHEMAS or schema_name.startswith("pg_"):
        raise ApplicationError(SCHEMA_RESERVED, params=dict(schema=schema_name))
    if Tenant.objects.filter(schema_name=schema_name).exists() or schema_exists(schema_name):
        raise ApplicationError(SCHEMA_TAKEN, params=dict(schema=schema_name))
    if not DOMAIN_RE.match(domain):
        raise ApplicationError(DOMAIN_INVALID, params=dict(domain=domain))
    if Domain.objects.filter(domain=domain).exists():
        raise ApplicationError(DOMAIN_TAKEN, params=dict(domain=domain))
    try:
        validate_email(admin_email)
    except ValidationError as exc:
        raise ApplicationError(EMAIL_INVALID, params=dict(email=admin_email)) from exc


def _admin_username(admin_email: str) -> str:
    local = re.sub(r"[^a-zA-Z0-9_.+-]", "", admin_email.split("@", 1)[0]) or "admin"
    return local[:150]


def tenant_onboard(
    *,
    schema_name: str,
    name: str,
    domain: str,
    admin_email: str,
    kind: str = Tenant.Kind.CITY,
    timezone_name: str = "Europe/Berlin",
    language: str = "de",
    admin_username: str | None = None,
    actor: User | None = None,
    meta: RequestMeta | None = None,
    progress: ProgressCallback | None = None,
) -> OnboardingResult:
    """Create a ready-to-use tenant: schema, primary domain, roles, first admin, defaults."""
    if connection.schema_name != get_public_schema_name():
        raise ApplicationError(gettext_noop("Tenants can only be onboarded from the operator (public) side."))
    schema_name = schema_name.strip().lower()
    domain = domain.strip().lower()
    admin_email = admin_email.strip().lower()
    steps: list[tuple[str, float]] = []

    with transaction.atomic():
        with _step(_("check input"), steps, progress):
            _validate(schema_name, domain, admin_email)
            if not schema_exists(settings.TENANT_BASE_SCHEMA):
                raise ApplicationError(TEMPLATE_MISSING)
        with _step(_("create the database schema (a copy of the template)"), steps, progress):
            tenant = Tenant(
                schema_name=schema_name,
                name=name.strip(),
                kind=kind,
                timezone=timezone_name,
                default_language=language,
                # privacy by default; per-person click tracking is the tenant's explicit choice
                link_tracking=Tenant.LinkTracking.AGGREGATE,
            )
            tenant.full_clean(exclude=["schema_name"])
            tenant.save()
        with _step(_("primary domain"), steps, progress):
            primary = Domain.objects.create(domain=domain, tenant=tenant, is_primary=True)

        with schema_context(schema_name):
            connection.set_tenant(tenant)
            with _step(_("roles"), steps, progress):
                roles_sync()
            with _step(_("first administrator"), steps, progress):
                admin = user_create(
                    username=admin_username or _admin_username(admin_email),
                    email=admin_email,
                    role_names=[roles.ADMIN],
                    actor=None,
                )
                link = user_password_setup_link(user=admin, base_url=tenant_base_url(domain))
            # settings.TENANT_ONBOARDING_HOOKS: defaults other apps give every new tenant
            # (e.g. the sandbox messenger connection), run inside the new schema.
            for hook in settings.TENANT_ONBOARDING_HOOKS:
                app = django_apps.get_containing_app_config(hook)
                label = _("defaults of %(app)s") % {"app": app.verbose_name if app else hook}
                with _step(label, steps, progress):
                    import_string(hook)(tenant=tenant)
            audit_log(
                action="tenant.onboarded",
                actor_label=actor.get_username() if actor else "operator",
                target_label=name,
                details={"schema": schema_name, "domain": domain, "admin": admin.get_username()},
            )
        connection.set_schema_to_public()
        audit_log(
            action="tenant.onboarded",
            actor=actor,
            target=tenant,
            details={
                "schema": schema_name,
                "domain": domain,
                "admin_email": admin_email,
                "seconds": round(sum(d for _, d in steps), 3),
            },
            meta=meta,
        )
    logger.info("tenant %s onboarded in %.2fs", schema_name, sum(d for _, d in steps))
    return OnboardingResult(tenant=tenant, domain=primary, admin_user=admin, password_link=link, steps=steps)


@transaction.atomic
def tenant_ensure_public() -> Tenant:
    """The row django-tenants routes the platform's own domain with (operator admin, webhooks)."""
    public, _ = Tenant.objects.get_or_create(
        schema_name=get_public_schema_name(), defaults={"name": "Platform", "kind": Tenant.Kind.COMPANY}
    )
    for host in [settings.BASE_DOMAIN, *settings.PUBLIC_EXTRA_DOMAINS]:
        Domain.objects.get_or_create(
            domain=host, defaults={"tenant": public, "is_primary": host == settings.BASE_DOMAIN}
        )
    return public


@transaction.atomic
def tenant_suspend(*, tenant: Tenant, reason: str, actor: User | None, meta: RequestMeta | None = None) -> Tenant:
    """Suspended tenants see a notice instead of their pages, and workers skip their tasks."""
    if not reason.strip():
        raise ApplicationError(gettext_noop("Give a reason for the suspension; the tenant's users will see it."))
    if tenant.status == Tenant.Status.SUSPENDED:
        return tenant
    tenant.status = Tenant.Status.SUSPENDED
    tenant.suspended_at = timezone.now()
    tenant.suspended_reason = reason.strip()[:300]
    tenant.save(update_fields=["status", "suspended_at", "suspended_reason", "updated_at"])
    _forget_cached_tenants()
    audit_log(action="tenant.suspended", actor=actor, target=tenant, details={"reason": reason}, meta=meta)
    return tenant


@transaction.atomic
def tenant_reactivate(*, tenant: Tenant, actor: User | None, meta: RequestMeta | None = None) -> Tenant:
    if tenant.status == Tenant.Status.ACTIVE:
        return tenant
    tenant.status = Tenant.Status.ACTIVE
    tenant.suspended_at = None
    tenant.suspended_reason = ""
    tenant.save(update_fields=["status", "suspended_at", "suspended_reason", "updated_at"])
    _forget_cached_tenants()
    audit_log(action="tenant.reactivated", actor=actor, target=tenant, meta=meta)
    return tenant


def _forget_cached_tenants() -> None:
    """This process routes with the new state at once; other processes within seconds."""
    CachedTenantMiddleware._cache.clear()


BRANDING_FIELDS = {
    "name",
    "logo",
    "primary_color",
    "timezone",
    "default_language",
    "inbox_retention_days",
    "privacy_notice_url",
    "quiet_hours_start",
    "quiet_hours_end",
    "link_tracking",
}


@transaction.atomic
def tenant_update_settings(
    *,
    tenant: Tenant,
    actor: User | None,
    meta: RequestMeta | None = None,
    name: str | Unchanged = UNCHANGED,
    logo: Any = UNCHANGED,
    primary_color: str | Unchanged = UNCHANGED,
    timezone: str | Unchanged = UNCHANGED,
    default_language: str | Unchanged = UNCHANGED,
    inbox_retention_days: int | Unchanged = UNCHANGED,
    privacy_notice_url: str | Unchanged = UNCHANGED,
    quiet_hours_start: dt.time | None | Unchanged = UNCHANGED,
    quiet_hours_end: dt.time | None | Unchanged = UNCHANGED,
    link_tracking: str | Unchanged = UNCHANGED,
) -> Tenant:
    """Branding and defaults a tenant admin may change for their own tenant (the BRANDING_FIELDS);
    the fields left UNCHANGED keep their value."""
    given: dict[str, Any] = {
        "name": name,
        "logo": logo,
        "primary_color": primary_color,
        "timezone": timezone,
        "default_language": default_language,
        "inbox_retention_days": inbox_retention_days,
        "privacy_notice_url": privacy_notice_url,
        "quiet_hours_start": quiet_hours_start,
        "quiet_hours_end": quiet_hours_end,
        "link_tracking": link_tracking,
    }
    fields = {key: value for key, value in given.items() if value is not UNCHANGED}
    changed = [key for key, value in fields.items() if getattr(tenant, key) != value]
    for key in changed:
        setattr(tenant, key, fields[key])
    if changed:
        tenant.full_clean(exclude=["schema_name"])
        with schema_context(get_public_schema_name()):
            tenant.save(update_fields=[*changed, "updated_at"])
        _forget_cached_tenants()
        audit_log(
            action="tenant.settings_changed",
            actor=actor,
            target_label=tenant.name,
            details={"fields": sorted(changed)},
            meta=meta,
        )
    return tenant
