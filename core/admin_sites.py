"""Two admin sites: the operators' (public schema, platform-wide) and each tenant's own.

They are separate AdminSite instances on purpose: a model registered for operators (say,
Tenant) must never appear in a tenant's admin, where the public tables are still reachable
through PostgreSQL's search_path. Both sites send their login through allauth, so throttling
and two-factor apply to the admin too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path
from django.utils.translation import gettext_lazy as _


class OperatorAdminSite(admin.AdminSite):
    site_header = _("Messenger-Newsletter · Operator")
    site_title = _("Operator")
    index_title = _("Platform")
    enable_nav_sidebar = True

    def has_permission(self, request: HttpRequest) -> bool:
        tenant = getattr(request, "tenant", None)
        return bool(
            tenant is not None and tenant.schema_name == "public" and request.user.is_active and request.user.is_staff
        )


@dataclass(frozen=True)
class AdminPage:
    """A page of a tenant's admin that belongs to no model (an app adds it with `add_page`)."""

    route: str
    view: Callable[..., HttpResponse]  # takes the request, plus the route's parameters
    name: str
    permission: str
    # a template variable that tells whether the user may open the page (for the page's link)
    context_flag: str


class TenantAdminSite(admin.AdminSite):
    site_title = _("Newsletter")
    index_title = _("Overview")
    enable_nav_sidebar = True

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)
        self._pages: list[AdminPage] = []

    def add_page(self, page: AdminPage) -> None:
        """Mount an app's own page (say, the tenant's settings) at admin/<route>, behind the admin login."""
        self._pages.append(page)

    def has_permission(self, request: HttpRequest) -> bool:
        tenant = getattr(request, "tenant", None)
        return bool(
            tenant is not None and tenant.schema_name != "public" and request.user.is_active and request.user.is_staff
        )

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        tenant = getattr(request, "tenant", None)
        context["site_header"] = getattr(tenant, "name", "") or self.site_header
        for page in self._pages:
            context[page.context_flag] = request.user.has_perm(page.permission)
        return context

    def get_urls(self) -> list[Any]:
        pages = [path(page.route, self.admin_view(page.view), name=page.name) for page in self._pages]
        return [*pages, *super().get_urls()]


operator_site = OperatorAdminSite(name="operator_admin")
tenant_site = TenantAdminSite(name="tenant_admin")
operator_site.login = secure_admin_login(operator_site.login)  # type: ignore[method-assign]
tenant_site.login = secure_admin_login(tenant_site.login)  # type: ignore[method-assign]


class ReadOnlyAdminMixin:
    """For records nobody edits in the admin (audit log, ledger, deliveries, provider traffic):
    listed and shown, never added, changed or deleted. Works for model admins and inlines."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def admin_object_or_404(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, object_id: str, queryset: QuerySet[Any] | None = None
) -> Model:
    """The object an admin URL names (from the admin's own queryset unless one is given), or 404.

    For custom change views: get_object_or_404(Model, pk=object_id) lets ids that are no id at
    all ("abc", "1/2", 5,000 digits, a NUL byte) escape as a 500."""
    try:
        pk = model_admin.model._meta.pk.to_python(unquote(object_id))
    except (ValidationError, ValueError, TypeError):
        raise Http404("no such object") from None
    rows = queryset if queryset is not None else model_admin.get_queryset(request)
    found: Model | None = rows.filter(pk=pk).first()
    if found is None:
        raise Http404("no such object")
    return found
