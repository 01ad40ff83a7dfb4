"""Two-factor enforcement: admins, approvers and operators cannot use the admin until they have
enrolled a TOTP authenticator. The allauth pages (login, 2FA setup, logout) stay reachable.

Which requests are protected is decided by the view the URL resolved to (every view of an admin
site), not by the path: `request.path` also holds SCRIPT_NAME, which a WSGI server may take from
a forwarder's header, so a prefix there must not make /admin/ look like another page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from allauth.mfa.utils import is_mfa_enabled
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode

from accounts.selectors import user_may_skip_mfa, user_requires_mfa

PROTECTED_APP = "admin"  # the application namespace of every AdminSite's URLs


class MfaRequiredMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        match = request.resolver_match
        user = getattr(request, "user", None)
        if (
            match is None
            or PROTECTED_APP not in match.app_names
            or user is None
            or not user.is_authenticated
            or not user_requires_mfa(user)
            or is_mfa_enabled(user)
        ):
            return None
        if user_may_skip_mfa(user):
            request.mfa_waived = True  # type: ignore[attr-defined]
            return None
        target = reverse("mfa_activate_totp")
        return HttpResponseRedirect(f"{target}?{urlencode({'next': request.get_full_path()})}")
