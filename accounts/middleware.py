"""Two-factor enforcement: admins, approvers and operators cannot use the admin until they have
enrolled a TOTP authenticator. The allauth pages (login, 2FA setup, logout) stay reachable."""

from __future__ import annotations

from collections.abc import Callable

from allauth.mfa.utils import is_mfa_enabled
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode

from accounts.selectors import user_may_skip_mfa, user_requires_mfa

PROTECTED_PREFIXES = ("/admin/",)


class MfaRequiredMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and request.path.startswith(PROTECTED_PREFIXES)
            and user_requires_mfa(user)
            and not is_mfa_enabled(user)
        ):
            if user_may_skip_mfa(user):
                request.mfa_waived = True  # type: ignore[attr-defined]
            else:
                target = reverse("mfa_activate_totp")
                return HttpResponseRedirect(f"{target}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)
