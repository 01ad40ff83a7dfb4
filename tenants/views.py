"""Tenant admin page: the tenant's own branding and defaults (admins only). Mounted on the tenant
admin site by tenants/admin.py."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _

from core.admin_sites import tenant_site
from core.errors import ApplicationError
from core.http import request_meta, request_user
from tenants.forms import TenantSettingsForm
from tenants.models import Tenant
from tenants.services import BRANDING_FIELDS, tenant_update_settings

SETTINGS_PERMISSION = "accounts.manage_tenant_settings"


def tenant_settings(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(SETTINGS_PERMISSION):
        raise PermissionDenied
    tenant = Tenant.objects.get(pk=request.tenant.pk)  # type: ignore[attr-defined]
    form = TenantSettingsForm(request.POST or None, request.FILES or None, instance=tenant)
    if request.method == "POST" and form.is_valid():
        fields = {key: form.cleaned_data[key] for key in form.changed_data if key in BRANDING_FIELDS}
        try:
            tenant_update_settings(
                tenant=Tenant.objects.get(pk=tenant.pk),
                actor=request_user(request),
                meta=request_meta(request),
                **fields,
            )
        except ApplicationError as exc:
            form.add_error(None, exc.localized)
        else:
            messages.success(request, _("Settings saved."))
            return HttpResponseRedirect(reverse("tenant_admin:tenant_settings"))
    context = {**tenant_site.each_context(request), "title": _("Settings"), "form": form, "tenant": tenant}
    return TemplateResponse(request, "tenants/admin/settings.html", context)
