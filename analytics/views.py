"""Tenant admin pages of the start page: hiding the "first steps" list. Mounted on the tenant
admin site by analytics/admin.py."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.services import user_dismiss_first_steps
from core.http import request_user

# Only admins see the list (analytics.selectors.first_steps); they all hold this permission.
FIRST_STEPS_PERMISSION = "accounts.manage_tenant_settings"


@require_POST
def first_steps_dismiss(request: HttpRequest) -> HttpResponse:
    user = request_user(request)
    if user is None or not user.has_perm(FIRST_STEPS_PERMISSION):
        raise PermissionDenied
    user_dismiss_first_steps(user=user)
    return HttpResponseRedirect(reverse("tenant_admin:index"))
