"""Roll-ups: figures computed from the detailed data, written where the readers need them.

TenantRollup lives in the public schema (analytics is a shared app): each tenant's figures for
the operator overview and /metrics, so cross-tenant numbers never need cross-schema joins.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from tenants.models import Tenant


class TenantRollup(models.Model):
    """Per-tenant figures written by a task running inside each tenant, read by the operator
    overview. Cross-tenant numbers come from here, never from cross-schema joins."""

    schema_scope = "public"  # core.routers: no table in tenant schemas (analytics is in both app lists)

    tenant = models.OneToOneField(Tenant, verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="rollup")
    computed_at = models.DateTimeField(_("computed at"))
    metrics = models.JSONField(_("figures"), default=dict)

    class Meta:
        verbose_name = _("tenant figures")
        verbose_name_plural = _("tenant figures")

    def __str__(self) -> str:
        return f"{self.tenant_id} @ {self.computed_at:%Y-%m-%d %H:%M}"
