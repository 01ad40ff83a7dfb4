"""Request-level plumbing: metrics, suspended tenants, tenant timezone and language."""

from __future__ import annotations

import time
import zoneinfo
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import resolve
from django.utils import timezone, translation
from django_tenants.middleware.main import TenantMainMiddleware

from core import metrics

# Paths a suspended tenant still answers: load balancers and the static files of the notice.
# Compared with path_info (what the URL resolver sees), never with request.path, which starts
# with SCRIPT_NAME: a prefix such as /healthz there must not open the tenant's pages.
SUSPENSION_EXEMPT_PATHS = ("/healthz",)
SUSPENSION_EXEMPT_PREFIXES = ("/static/",)


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match else "unresolved"
        metrics.observe_request(
            view=view or "unknown", status=response.status_code, seconds=time.perf_counter() - started
        )
        return response


class RejectNulBytesMiddleware:
    """400 for a NUL byte in the path or the query string. PostgreSQL refuses NUL in text, so such
    a value reaching any query (an admin filter, a token lookup) would end as a 500; no URL of ours
    ever holds one. Form fields are covered by Django's own ProhibitNullCharactersValidator."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path_info or "%00" in query or "\x00" in query:
            if request.path_info.startswith("/api/"):  # the REST API's one error format (core.rest)
                error = {"error": {"code": "invalid", "message": "NUL bytes are not allowed in URLs."}}
                return JsonResponse(error, status=400)
            return HttpResponse("NUL bytes are not allowed in URLs.\n", status=400, content_type="text/plain")
        return self.get_response(request)


class TenantContextMiddleware:
    """Runs after TenantMainMiddleware, sessions, locale and auth.

    * suspended tenant: a clear notice (HTTP 503) instead of any page;
    * the tenant's timezone is active for the request (forms and lists show local time);
    * language: a staff user's own choice, else the tenant's default, unless the visitor
      picked one (language cookie) or the browser asked for one.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        if tenant is None or tenant.schema_name == "public":
            return self.get_response(request)
        if not tenant.is_active and not self._exempt(request.path_info):
            return render(request, "core/suspended.html", {"tenant": tenant}, status=503)
        try:
            timezone.activate(zoneinfo.ZoneInfo(tenant.timezone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()
        language = self._language(request, tenant.default_language)
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        try:
            response = self.get_response(request)
        finally:
            timezone.deactivate()
        return response

    @staticmethod
    def _exempt(path_info: str) -> bool:
        return path_info in SUSPENSION_EXEMPT_PATHS or path_info.startswith(SUSPENSION_EXEMPT_PREFIXES)

    @staticmethod
    def _language(request: HttpRequest, tenant_default: str) -> str | None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and getattr(user, "language", ""):
            return str(user.language)
        if request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME) or request.META.get("HTTP_ACCEPT_LANGUAGE"):
            return None  # LocaleMiddleware already chose
        return tenant_default or None


class CachedTenantMiddleware(TenantMainMiddleware):
    """django-tenants' routing by host name, with the host → tenant lookup cached for a few
    seconds per process (one query less on every request; a suspension shows within seconds)."""

    CACHE_SECONDS = 5.0
    _cache: dict[str, tuple[float, object]] = {}

    def get_tenant(self, domain_model: object, hostname: str) -> object:
        now = time.monotonic()
        hit = self._cache.get(hostname)
        if hit is not None and now - hit[0] < self.CACHE_SECONDS:
            return hit[1]
        tenant = super().get_tenant(domain_model, hostname)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[hostname] = (now, tenant)
        return tenant


class WebhookFastPathMiddleware:
    """Provider webhooks arrive thousands of times a second and need none of the session,
    locale, auth, CSRF or tenant-host machinery: they route by their body or route key and
    verify their own signature (messengers.webhooks). This sits right after the metrics
    middleware and answers them directly."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith("/webhooks/"):
            return self.get_response(request)
        match = resolve(request.path_info, urlconf=settings.PUBLIC_SCHEMA_URLCONF)
        request.resolver_match = match
        response = match.func(request, *match.args, **match.kwargs)
        response.setdefault("Cache-Control", "no-store")
        # SecurityMiddleware comes later and never sees these; the handshake echoes its challenge
        response.setdefault("X-Content-Type-Options", "nosniff")
        return response
