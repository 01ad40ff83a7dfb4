"""The REST API's authentication, scopes, per-key rate limits and idempotent creates: the parts
that need accounts' tables (API keys, idempotency records). Every app's `api.py` uses them
through the settings (REST_FRAMEWORK) and `idempotent_create`; core.rest has the rest.

Clients send `Authorization: Bearer mnl_…` (or `Api-Key mnl_…`). A key acts as the user who
created it, so the roles of that user and the four-eyes rule apply as in the admin; its scopes
limit it further. Staff signed in to the admin may call the API with their session (and CSRF
token) too, where their roles apply and scopes do not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from allauth.mfa.utils import is_mfa_enabled
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions, permissions, throttling
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import services
from accounts.models import ApiKey
from accounts.selectors import user_may_skip_mfa, user_requires_mfa
from core.http import request_meta

KEYWORDS = ("bearer", "api-key")


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>`. A wrong, revoked or expired key is a 401 (never a fallback
    to anonymous), so a client notices at once."""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        keyword, _sep, secret = header.strip().partition(" ")
        if not header or keyword.lower() not in KEYWORDS:
            return None
        secret = secret.strip()
        if not secret or " " in secret:
            raise exceptions.AuthenticationFailed(_("Invalid API key header."))
        key = services.api_key_authenticate(secret)
        if key is None:
            raise exceptions.AuthenticationFailed(_("This API key is unknown, revoked or expired."))
        return key.user, key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class StaffSessionAuthentication(authentication.SessionAuthentication):
    """The admin's own session (with DRF's CSRF check), for the admin's pages. Whoever must use
    two-factor and has not enrolled gets no further than in the admin."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        result = super().authenticate(request)
        if result is None:
            return None
        user = result[0]
        if user_requires_mfa(user) and not is_mfa_enabled(user) and not user_may_skip_mfa(user):
            raise exceptions.PermissionDenied(_("Set up two-factor authentication in the admin first."))
        return result


def request_key(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


class ScopeAndRole(permissions.BasePermission):
    """The API class's `scope` must be among the key's scopes (session users have no scopes: their
    roles decide), and the acting user must hold the class's `permission`."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        key = request_key(request)
        scope = getattr(view, "scope", "")
        if key is not None and scope and scope not in key.scopes:
            self.message = str(_("This API key lacks the scope “%(scope)s”.")) % {"scope": scope}
            return False
        permission = getattr(view, "permission", "")
        if permission and not user.has_perm(permission):
            self.message = str(_("The user this request acts for has no role that allows this."))
            return False
        return True


class KeyRateThrottle(throttling.SimpleRateThrottle):
    """Each key's own limit (ApiKey.rate_limit per minute), counted in the cache (tenant-prefixed
    keys), so all web processes share the count when the cache is Redis or the database."""

    scope = "api_key"

    def allow_request(self, request: Request, view: Any) -> bool:
        key = request_key(request)
        if key is None:
            return True
        self.num_requests, self.duration = key.rate_limit, 60
        self.key = f"throttle_api_key_{key.pk}"
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if len(self.history) >= self.num_requests:
            return self.throttle_failure()
        return self.throttle_success()

    def get_rate(self) -> str:
        return "120/min"  # replaced per key in allow_request

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return None


class SessionRateThrottle(throttling.UserRateThrottle):
    """Staff using the API with their session: a generous per-user limit."""

    rate = "600/min"

    def allow_request(self, request: Request, view: Any) -> bool:
        return request_key(request) is not None or super().allow_request(request, view)


IDEMPOTENCY_HEADER = "Idempotency-Key"


def idempotent_create(request: Request, create: Callable[[], Response]) -> Response:
    """Run a create once per `Idempotency-Key` (when the client sends one): the same key with
    the same body replays the first answer (header `Idempotent-Replayed: true`); with another
    body it is a 409. Without the header the create simply runs."""
    # imported here: DRF imports this module (its settings name our classes) while loading its
    # views, and core.rest imports DRF's views
    from core.rest import request_fingerprint

    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if not key:
        return create()
    api_key = request_key(request)
    owner = f"key:{api_key.pk}" if api_key is not None else f"user:{request.user.pk}"
    fingerprint = request_fingerprint(request)

    def run() -> tuple[int, Any]:
        response = create()
        return response.status_code, response.data

    status, body, replayed = services.idempotency_run(owner=owner, key=key, request_hash=fingerprint, create=run)
    response = Response(body, status=status)
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def acting_meta(request: Request) -> Any:
    """RequestMeta for services (the client's address and user agent)."""
    return request_meta(request._request)


def audit_approve_scope_use(request: Request, *, target: Any, action: str) -> None:
    """The audit log notes each use of the approve scope by a key (approve or reject)."""
    key = request_key(request)
    if key is None:
        return
    services.audit_log(
        action="api_key.approve_used", actor=request.user, target=target, meta=acting_meta(request),
        details={"prefix": key.prefix, "key": key.name, "step": action},
    )  # fmt: skip
