"""Library signal hooks, each a one-line hand-off to the audit service."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.models import User
from accounts.selectors import user_requires_mfa
from accounts.services import audit_log
from core.http import request_meta


@receiver(user_logged_in, dispatch_uid="accounts.audit_privileged_login")
def _audit_privileged_login(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    if user_requires_mfa(user):
        audit_log(action="auth.login", actor=user, target=user, meta=request_meta(request))


@receiver(user_login_failed, dispatch_uid="accounts.audit_login_failed")
def _audit_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # allauth passes the login identifier under different keys; never log the password
    login = str(credentials.get("username") or credentials.get("email") or credentials.get("login") or "")[:150]
    audit_log(
        action="auth.login_failed", actor_label=login or "?", details={"login": login}, meta=request_meta(request)
    )
