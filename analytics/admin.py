"""The admin start pages: the tenant's (first steps, what needs me, what is sending, what went
out, subscribers) and the operator's platform overview; the tenant's channel figures; the
operator's per-tenant figures."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from analytics import nav, views_broadcasts  # noqa: F401 - nav registers the entries
from analytics.export import export_response
from analytics.export_tables import tenant_figures_table
from analytics.models import TenantRollup
from analytics.selectors_operator import tenant_figures
from analytics.views import (
    FIRST_STEPS_PERMISSION,
    START_SENDING_PERMISSION,
    first_steps_dismiss,
    start_sending_json,
)
from analytics.views_channels import CHANNEL_FIGURES_PERMISSION, channel_figures, channel_figures_one
from core.admin_sites import AdminPage, NavEntry, ReadOnlyAdminMixin, operator_site, tenant_site

tenant_site.index_template = "analytics/admin/index.html"
operator_site.index_template = "analytics/admin/operator_index.html"
tenant_site.add_page(
    AdminPage(
        route="first-steps/dismiss/",
        view=first_steps_dismiss,
        name="first_steps_dismiss",
        permission=FIRST_STEPS_PERMISSION,
        context_flag="can_dismiss_first_steps",
    )
)
tenant_site.add_page(
    AdminPage(
        route="start/sending.json",
        view=start_sending_json,
        name="start_sending",
        permission=START_SENDING_PERMISSION,
        context_flag="can_view_start_sending",
    )
)

tenant_site.add_page(
    AdminPage(
        route="analytics/broadcasts/",
        view=views_broadcasts.broadcast_results,
        name="analytics_broadcasts",
        permission=views_broadcasts.PERMISSION,
        context_flag="can_view_broadcast_results",
    )
)

# Channel figures: every channel over a period, and one channel's page (linked from its admin page).
tenant_site.add_page(
    AdminPage(
        route="analytics/channels/",
        view=channel_figures,
        name="analytics_channels",
        permission=CHANNEL_FIGURES_PERMISSION,
        context_flag="can_view_channel_figures",
    )
)
tenant_site.add_page(
    AdminPage(
        route="analytics/channels/<int:pk>/",
        view=channel_figures_one,
        name="analytics_channel",
        permission=CHANNEL_FIGURES_PERMISSION,
        context_flag="can_view_channel_figures",
    )
)
tenant_site.add_nav(
    NavEntry(
        key="channel_figures",
        label=_("Channel figures"),
        url="analytics_channels",
        permissions=(CHANNEL_FIGURES_PERMISSION,),
        icon="chart",
        order=25,
    )
)


@admin.register(TenantRollup, site=operator_site)
class TenantFiguresAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The operator's per-tenant overview: its list is the page (analytics.selectors_operator)."""

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = tenant_figures()
        # the export is audit-logged in the public schema's log, where operators act
        if (exported := export_response(request, [tenant_figures_table(rows)])) is not None:
            return exported
        context = {
            **operator_site.each_context(request),
            "title": _("Tenant figures"),
            "rows": rows,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "analytics/admin/tenant_figures.html", context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return HttpResponseRedirect(reverse("operator_admin:analytics_tenantrollup_changelist"))


operator_site.add_nav(
    NavEntry(
        key="tenant_figures",
        label=_("Tenant figures"),
        url="analytics_tenantrollup_changelist",
        icon="chart",
        order=15,
    )
)

from analytics import admin_inbox  # noqa: E402, F401 - the inbox figures page registers itself
