"""Tenant admin pages of the start page: hiding the "first steps" list, and the live progress of
what is sending now. Mounted on the tenant admin site by analytics/admin.py."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.services import user_dismiss_first_steps
from analytics.selectors import BroadcastProgress, sending_progress
from core.http import request_user

# Only admins see the list (analytics.selectors.first_steps); they all hold this permission.
FIRST_STEPS_PERMISSION = "accounts.manage_tenant_settings"
# Every role that sees the start page's "Sending now" card.
START_SENDING_PERMISSION = "broadcasts.view_broadcast"


@require_POST
def first_steps_dismiss(request: HttpRequest) -> HttpResponse:
    user = request_user(request)
    if user is None or not user.has_perm(FIRST_STEPS_PERMISSION):
        raise PermissionDenied
    user_dismiss_first_steps(user=user)
    return HttpResponseRedirect(reverse("tenant_admin:index"))


def _sending_item(item: BroadcastProgress) -> dict[str, object]:
    progress = item.progress
    return {
        "id": item.broadcast.pk,
        "title": item.broadcast.title,
        "url": reverse("tenant_admin:broadcasts_broadcast_change", args=[item.broadcast.pk]),
        "total": progress.total,
        "done": progress.done,
        "percent": progress.percent,
        "reached": item.reached,
        "read": progress.read,
        "failed": progress.failed,
    }


@require_GET
def start_sending_json(request: HttpRequest) -> JsonResponse:
    """What is sending now, for the start page's live progress bars (polled every few seconds;
    `sending` is empty when nothing is, and the page stops asking)."""
    user = request_user(request)
    if user is None or not user.has_perm(START_SENDING_PERMISSION):
        raise PermissionDenied
    return JsonResponse({"sending": [_sending_item(item) for item in sending_progress()]})
