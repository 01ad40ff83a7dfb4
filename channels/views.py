"""Public alarm status: JSON for the city's own systems, and a widget for its web pages.

Both are read-only, need no login, and are meant to be used from other sites: the JSON allows
any origin (CORS), the widget may be framed by any site (X-Frame-Options off and CSP
frame-ancestors relaxed for this one view only; every other page stays DENY / 'self').
"""

from __future__ import annotations

from csp.decorators import csp_replace
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_GET

from channels.selectors import STATE_LABELS, channel_alarm_status

# Caches and the widget's own refresh: fresh enough for an alarm, cheap enough for a city portal.
STATUS_MAX_AGE = 30
WIDGET_REFRESH_SECONDS = 60
WIDGET_TEXTS = {
    "de": {"since": "seit", "subscribe": "Per Messenger benachrichtigen lassen",
           "offline": "Status gerade nicht abrufbar – wird erneut versucht."},
    "en": {"since": "since", "subscribe": "Get notified on your messenger",
           "offline": "Status currently unavailable – retrying."},
}  # fmt: skip


def _language(request: HttpRequest) -> str:
    wanted = request.GET.get("lang", "")
    if wanted in STATE_LABELS:
        return wanted
    tenant_default = getattr(getattr(request, "tenant", None), "default_language", "de")
    return "en" if tenant_default == "en" else "de"


@require_GET
def status_json(request: HttpRequest, slug: str) -> HttpResponse:
    status = channel_alarm_status(slug)
    if status is None:
        response = JsonResponse({"error": "not_found", "detail": "No public alarm channel with this name."}, status=404)
    else:
        response = JsonResponse(
            {
                "channel": status.slug,
                "name": status.name,
                "state": status.state,
                "colour": status.colour,
                "label": {language: labels[status.state] for language, labels in STATE_LABELS.items()},
                "since": status.since.isoformat() if status.since else None,
                "checked_at": timezone.now().isoformat(),
            }
        )
    response["Access-Control-Allow-Origin"] = "*"
    patch_cache_control(response, public=True, max_age=STATUS_MAX_AGE)
    return response


@require_GET
@xframe_options_exempt
@csp_replace({"frame-ancestors": ["*"]})  # type: ignore[arg-type]  # stubs assume views take only a request
def status_widget(request: HttpRequest, slug: str) -> HttpResponse:
    status = channel_alarm_status(slug)
    if status is None:
        raise Http404("No public alarm channel with this name.")
    language = _language(request)
    response = render(
        request,
        "channels/widget.html",
        {
            "status": status,
            "language": language,
            "label": status.label(language),
            "texts": WIDGET_TEXTS[language],
            "refresh_seconds": WIDGET_REFRESH_SECONDS,
            "tenant": getattr(request, "tenant", None),
        },
    )
    patch_cache_control(response, public=True, max_age=STATUS_MAX_AGE)
    return response
