"""Operator admin (public schema): tenants, onboarding, suspension."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from core.admin_sites import AdminPage, operator_site, tenant_site
from core.errors import ApplicationError
from core.http import request_meta, request_user
from tenants import nav as _nav  # noqa: F401 (registers the navigation entries)
from tenants import selectors, services
from tenants.forms import OnboardTenantForm, SuspendTenantForm
from tenants.models import Domain, Tenant
from tenants.notifications import send_admin_welcome
from tenants.views import SETTINGS_PERMISSION, tenant_settings

# The tenant's own settings page, linked from the tenant admin's header for those allowed.
tenant_site.add_page(
    AdminPage(
        route="settings/",
        view=tenant_settings,
        name="tenant_settings",
        permission=SETTINGS_PERMISSION,
        context_flag="can_manage_settings",
    )
)


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0
    fields = ["domain", "is_primary"]


@admin.register(Tenant, site=operator_site)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "schema_name", "primary_domain", "kind", "status", "users", "figures_at"]
    list_filter = ["status", "kind"]
    search_fields = ["name", "schema_name", "domains__domain"]
    readonly_fields = ["schema_name", "status", "suspended_at", "suspended_reason", "created_at", "rollup_figures"]
    fields = [
        "name",
        "schema_name",
        "kind",
        "timezone",
        "default_language",
        "logo",
        "primary_color",
        "inbox_retention_days",
        "privacy_notice_url",
        "quiet_hours_start",
        "quiet_hours_end",
        "link_tracking",
        "status",
        "suspended_at",
        "suspended_reason",
        "created_at",
        "rollup_figures",
    ]
    inlines = [DomainInline]
    change_form_template = "tenants/admin/tenant_change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return selectors.tenant_list_overview()

    @admin.display(description=_("domain"))
    def primary_domain(self, obj: Tenant) -> str:
        domain = selectors.tenant_primary_domain(obj)
        if not domain:
            return "-"
        return format_html(
            '<a href="{}/admin/" target="_blank" rel="noopener">{}</a>', selectors.tenant_base_url(domain), domain
        )

    @admin.display(description=_("active users"))
    def users(self, obj: Tenant) -> Any:
        rollup = getattr(obj, "rollup", None)
        return rollup.metrics.get("users", "-") if rollup else "-"

    @admin.display(description=_("figures from"))
    def figures_at(self, obj: Tenant) -> Any:
        rollup = getattr(obj, "rollup", None)
        return rollup.computed_at if rollup else "-"

    @admin.display(description=_("figures"))
    def rollup_figures(self, obj: Tenant) -> str:
        rollup = getattr(obj, "rollup", None)
        if not rollup:
            return str(_("not computed yet (every 5 minutes)"))
        return ", ".join(f"{key}: {value}" for key, value in sorted(rollup.metrics.items()))

    def has_delete_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        # Deleting a tenant would orphan or destroy a city's data; suspend instead.
        return False

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return HttpResponseRedirect(reverse("operator_admin:tenants_tenant_onboard"))

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        fields = {key: form.cleaned_data[key] for key in form.changed_data if key in services.BRANDING_FIELDS}
        fresh = Tenant.objects.get(pk=obj.pk)
        services.tenant_update_settings(tenant=fresh, actor=request_user(request), meta=request_meta(request), **fields)

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path("onboard/", self.admin_site.admin_view(self.onboard_view), name="tenants_tenant_onboard"),
            path("<int:pk>/suspend/", self.admin_site.admin_view(self.suspend_view), name="tenants_tenant_suspend"),
            path(
                "<int:pk>/reactivate/",
                self.admin_site.admin_view(self.reactivate_view),
                name="tenants_tenant_reactivate",
            ),
        ]
        return custom + super().get_urls()

    def onboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        result = None
        form = OnboardTenantForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                result = services.tenant_onboard(
                    schema_name=data["schema_name"],
                    name=data["name"],
                    domain=data["domain"],
                    admin_email=data["admin_email"],
                    kind=data["kind"],
                    timezone_name=data["timezone"],
                    language=data["language"],
                    actor=request_user(request),
                    meta=request_meta(request),
                )
            except ApplicationError as exc:
                form.add_error(None, exc.localized)
            else:
                send_admin_welcome(result)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Onboard municipality"),
            "form": form,
            "result": result,
            "opts": self.model._meta,
            "tenant_admin_url": result.login_url if result else "",
        }
        return TemplateResponse(request, "tenants/admin/onboard.html", context)

    def suspend_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        tenant = get_object_or_404(Tenant, pk=pk)
        if not self.has_change_permission(request, tenant):
            raise PermissionDenied
        form = SuspendTenantForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.tenant_suspend(
                    tenant=tenant,
                    reason=form.cleaned_data["reason"],
                    actor=request_user(request),
                    meta=request_meta(request),
                )
            except ApplicationError as exc:
                form.add_error(None, exc.localized)
            else:
                messages.success(request, _("%(name)s is suspended.") % {"name": tenant.name})
                return HttpResponseRedirect(reverse("operator_admin:tenants_tenant_change", args=[tenant.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Suspend %(name)s") % {"name": tenant.name},
            "form": form,
            "tenant": tenant,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "tenants/admin/suspend.html", context)

    def reactivate_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        tenant = get_object_or_404(Tenant, pk=pk)
        if request.method != "POST" or not self.has_change_permission(request, tenant):
            raise PermissionDenied
        services.tenant_reactivate(tenant=tenant, actor=request_user(request), meta=request_meta(request))
        messages.success(request, _("%(name)s is active again.") % {"name": tenant.name})
        return HttpResponseRedirect(reverse("operator_admin:tenants_tenant_change", args=[tenant.pk]))
