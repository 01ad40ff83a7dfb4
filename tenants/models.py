"""Platform-wide (public schema) data: tenants, their domains, webhook routes and due work
(the per-tenant roll-ups are analytics').

Nothing here may point at a tenant-schema table: the public schema must not know them.
"""

from __future__ import annotations

import zoneinfo
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import FileSystemStorage
from django.core.validators import FileExtensionValidator, RegexValidator
from django.db import connection, models
from django.utils.translation import gettext_lazy as _
from django_tenants.clone import CloneSchema
from django_tenants.models import DomainMixin, TenantMixin
from django_tenants.postgresql_backend.base import _check_schema_name
from django_tenants.utils import schema_exists

from core.models import TimeStampedModel


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(_("%(value)s is not a known time zone (e.g. Europe/Berlin)."), params={"value": value})


def _branding_storage() -> FileSystemStorage:
    # Logos are public on every domain (subscribe page, widget), so they live outside the
    # per-tenant media folders: MEDIA_ROOT/branding/<schema>-<name>.
    return FileSystemStorage(location=settings.MEDIA_ROOT / "branding", base_url=f"{settings.MEDIA_URL}branding/")


def _logo_path(instance: Tenant, filename: str) -> str:
    extension = filename.rsplit(".", 1)[-1].lower()[:5] if "." in filename else "png"
    return f"{instance.schema_name}-logo.{extension}"


def validate_logo_size(value: Any) -> None:
    if value and value.size > 512 * 1024:
        raise ValidationError(_("The logo is larger than 512 KB; please upload a smaller file."))


hex_colour = RegexValidator(r"^#[0-9a-fA-F]{6}$", _("Enter a colour as #RRGGBB, e.g. #c8102e."))


class Tenant(TenantMixin, TimeStampedModel):  # type: ignore[django-manager-missing]
    class Kind(models.TextChoices):
        CITY = "city", _("City")
        MUNICIPALITY = "municipality", _("Municipality")
        TRANSIT = "transit", _("Transit operator")
        PARTY = "party", _("Political party")
        COMPANY = "company", _("Company")

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")

    # django-tenants' field, with a label
    schema_name = models.CharField(
        _("schema name"), max_length=63, unique=True, db_index=True, validators=[_check_schema_name]
    )

    name = models.CharField(_("display name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.CITY)
    timezone = models.CharField(_("time zone"), max_length=64, default="Europe/Berlin", validators=[validate_timezone])
    default_language = models.CharField(_("default language"), max_length=8, choices=settings.LANGUAGES, default="de")
    logo = models.FileField(
        _("logo"),
        upload_to=_logo_path,
        storage=_branding_storage,
        blank=True,
        validators=[FileExtensionValidator(["png", "jpg", "jpeg", "webp"]), validate_logo_size],
        help_text=_("PNG, JPEG or WebP, at most 512 KB."),
    )
    primary_color = models.CharField(_("brand colour"), max_length=7, default="#1f4e8c", validators=[hex_colour])
    inbox_retention_days = models.PositiveIntegerField(
        _("inbox retention (days)"),
        default=90,
        help_text=_("Citizens' messages in the inbox are deleted automatically after this many days."),
    )
    privacy_notice_url = models.URLField(
        _("privacy notice URL"), blank=True, help_text=_("Linked from the public subscribe page.")
    )

    class LinkTracking(models.TextChoices):
        PER_RECIPIENT = "per_recipient", _("Per recipient")
        AGGREGATE = "aggregate", _("Aggregate only (no per-person clicks)")

    quiet_hours_start = models.TimeField(
        _("quiet hours from"),
        null=True,
        blank=True,
        help_text=_("Normal broadcasts due in quiet hours wait until they end; alerts are never held."),
    )
    quiet_hours_end = models.TimeField(_("quiet hours until"), null=True, blank=True)
    # Privacy by default: a new tenant counts clicks per link only. Per-person tracking is an
    # explicit choice on the settings page (existing tenants kept theirs: the migration only
    # changed the default).
    link_tracking = models.CharField(
        _("link tracking"),
        max_length=16,
        choices=LinkTracking.choices,
        default=LinkTracking.AGGREGATE,
        help_text=_(
            "Per recipient records who clicked which link. Choose it only if your privacy notice says so "
            "and your subscribers have consented to it; aggregate only counts clicks per link."
        ),
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    suspended_at = models.DateTimeField(_("suspended at"), null=True, blank=True)
    suspended_reason = models.CharField(_("reason for suspension"), max_length=300, blank=True)

    # Schemas are created by tenants.services.tenant_onboard (cloned from the template schema)
    # and never dropped implicitly: deleting a row must not silently destroy a city's data.
    auto_create_schema = True
    auto_drop_schema = False

    class Meta:
        verbose_name = _("tenant")
        verbose_name_plural = _("tenants")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.schema_name})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    def create_schema(self, check_if_exists: bool = False, sync_schema: bool = True, verbosity: int = 1) -> bool:
        """Clone the template schema; fall back to running migrations when there is none.

        django-tenants' own clone path runs `migrate_schemas --fake` afterwards, which only
        re-records what the clone already copied (django_migrations is cloned with the data)
        and costs a second of migration-graph loading. The template is kept current by
        `manage.py tenant_template`, and onboarding checks it (tenants.services).
        """
        base_schema = self.get_base_schema() if sync_schema else None
        if base_schema and schema_exists(base_schema):
            if check_if_exists and schema_exists(self.schema_name):
                return False
            CloneSchema().clone_schema(base_schema, self.schema_name, self.clone_mode)
            connection.set_schema_to_public()  # type: ignore[attr-defined]
            return True
        result: bool = super().create_schema(check_if_exists, sync_schema, verbosity)
        return result


class Domain(DomainMixin):
    # django-tenants' fields, with labels
    domain: models.CharField[str, str] = models.CharField(_("domain"), max_length=253, unique=True, db_index=True)
    tenant: models.ForeignKey[Tenant, Tenant] = models.ForeignKey(
        settings.TENANT_MODEL, verbose_name=_("tenant"), db_index=True, related_name="domains", on_delete=models.CASCADE
    )
    is_primary: models.BooleanField[bool, bool] = models.BooleanField(_("primary domain"), default=True, db_index=True)

    class Meta:
        verbose_name = _("domain")
        verbose_name_plural = _("domains")

    def __str__(self) -> str:
        return self.domain


class WebhookRoute(models.Model):
    """Public routing table for provider webhooks, which arrive on the platform's domain:
    (provider, external account id) or a per-connection route key → tenant schema + connection.

    Written only by messengers.services when a connection is saved; holds ids, no FK into the
    tenant schema (the public schema must not depend on tenant tables)."""

    tenant = models.ForeignKey(
        Tenant, verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="webhook_routes"
    )
    provider = models.CharField(_("provider"), max_length=16)
    external_id = models.CharField(_("external ID"), max_length=120, blank=True)
    route_key = models.CharField(_("route key"), max_length=40, unique=True)
    connection_id = models.BigIntegerField(_("connection ID"))
    # sha256 of the connection's WhatsApp verify token, for Meta's GET handshake on the shared URL
    verify_token_sha256 = models.CharField(_("verify token (SHA-256)"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("webhook route")
        verbose_name_plural = _("webhook routes")
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "external_id"],
                name="webhook_route_external_unique",
                condition=~models.Q(external_id=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.external_id or self.route_key} → {self.tenant_id}/{self.connection_id}"


class DueWork(models.Model):
    """Public index of tenant work that becomes due at a point in time: scheduled broadcasts and
    the heartbeat of every broadcast that is sending. The dispatcher process polls it twice a
    second and queues the tenant task; the row stays until the task has done its part, so a
    crash between commit and enqueue (or a lost queue message) only delays work, never loses it."""

    tenant = models.ForeignKey(Tenant, verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="due_work")
    kind = models.CharField(_("kind"), max_length=32)
    object_id = models.BigIntegerField(_("object ID"))
    due_at = models.DateTimeField(_("due at"), db_index=True)
    enqueued_at = models.DateTimeField(_("queued at"), null=True, blank=True)

    class Meta:
        verbose_name = _("due work")
        verbose_name_plural = _("due work")
        constraints = [
            models.UniqueConstraint(fields=["tenant", "kind", "object_id"], name="due_work_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.kind}:{self.object_id} @ {self.due_at.isoformat()}"


class TaskWait(models.Model):
    """A tenant task that is queued and has not started yet (core.tasks): the platform-wide sign
    that work waits for a worker process. A broadcast's senders run for up to a minute each;
    they give their worker up to waiting work (broadcasts.pipeline.sender), so a broadcast that
    becomes due, the statuses to apply or another tenant's broadcast do not wait behind one
    large broadcast. Deleted when the task starts; a row older than TASK_WAIT_STALE was lost
    with its task: ignored, and purged by the dispatcher."""

    id = models.UUIDField(primary_key=True)
    # whose work: "<schema>:broadcast-<id>" for everything of one broadcast (its senders do not
    # give way to each other), else "<schema>:<task>"
    key = models.CharField(_("key"), max_length=200)
    # a broadcast's start and its first sender: a sender gives way within a fraction of a second
    # (the others after TASK_WAIT_PATIENCE)
    urgent = models.BooleanField(_("urgent"), default=False)
    queued_at = models.DateTimeField(_("queued at"), db_index=True)
    # when a sender last gave its worker up to this task: one gives way per task, not all at once
    yielded_at = models.DateTimeField(_("worker given up at"), null=True, blank=True)

    class Meta:
        verbose_name = _("waiting task")
        verbose_name_plural = _("waiting tasks")

    def __str__(self) -> str:
        return f"{self.key} since {self.queued_at.isoformat()}"
