"""allauth adapters: no self-signup (staff accounts are created by tenant admins), and the
TOTP issuer names the tenant so an authenticator app lists "Stuttgart" and "SPD" apart."""

from __future__ import annotations

import time
import unicodedata
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.flows.login import get_authentication_records
from allauth.mfa.adapter import DefaultMFAAdapter
from django.http import HttpRequest

from accounts.selectors import user_id_for_login
from core.http import client_ip
from core.tenancy import connection


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def get_client_ip(self, request: HttpRequest) -> str:
        """The per-IP limits (ACCOUNT_RATE_LIMITS) count the client behind our trusted proxies,
        not the proxy (core.http.client_ip)."""
        return client_ip(request) or "0.0.0.0"  # noqa: S104 - a bucket for the unknown, not a bind address

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        """The key of the per-account lockout ("5/15m/key" in ACCOUNT_RATE_LIMITS): tenant + user.

        allauth's own key is the Host header (port included) plus the login as typed, so each
        spelling of the account (username, e-mail address) and each port got fresh tries.
        allauth calls this hook both when counting a failure and when a password reset clears
        the count (tests/accounts/test_login_lockout.py checks both). Logins that name no single
        user are counted by what was typed, so probing unknown names is limited too."""
        identifiers = [str(credentials.get(key) or "") for key in ("username", "email")]
        user_id = user_id_for_login(identifiers)
        if user_id is not None:
            return f"{connection.schema_name}:user:{user_id}"
        typed = next((value for value in identifiers if value.strip()), "")
        return f"{connection.schema_name}:login:{unicodedata.normalize('NFKC', typed).strip().casefold()}"

    def is_reauthentication_required(self, *, app: str, **kwargs: Any) -> bool:
        """allauth asks for the password again before any 2FA change. Admins and approvers are
        sent to set up 2FA right after signing in; asking for the password they typed seconds
        ago helps nobody. So within FRESH_LOGIN_SECONDS of signing in, 2FA set-up (and viewing
        the recovery codes it produces) does not ask again; later changes still do."""
        required = super().is_reauthentication_required(app=app, **kwargs)
        request = getattr(self, "request", None)
        if not required or app != "allauth.mfa" or request is None or not request.user.is_authenticated:
            return required
        now = time.time()
        fresh = any(
            now - float(r.get("at", 0)) < FRESH_LOGIN_SECONDS for r in get_authentication_records(request, request.user)
        )
        return not fresh


FRESH_LOGIN_SECONDS = 300


class MfaAdapter(DefaultMFAAdapter):
    def get_totp_issuer(self) -> str:
        issuer = super().get_totp_issuer()
        tenant = getattr(connection, "tenant", None)
        name = getattr(tenant, "name", "") if tenant is not None and tenant.schema_name != "public" else ""
        return f"{issuer} ({name})" if name else issuer
