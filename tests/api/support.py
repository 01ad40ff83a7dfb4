"""Helpers of the API tests: keys made through the service, clients on a tenant's domain."""

from __future__ import annotations

from typing import Any

from django.test import Client

from accounts import roles
from accounts.models import API_SCOPES, ApiKey, User
from accounts.services import api_key_create
from tests.factories import make_user

ALL_SCOPES = list(API_SCOPES)
DOMAIN_A = "tenant-a.localhost"
DOMAIN_B = "tenant-b.localhost"


def make_key(
    scopes: list[str] | None = None, *, user: User | None = None, role: str = roles.ADMIN, **fields: Any
) -> tuple[ApiKey, str]:
    """A key of the current schema acting as `user` (a new user with `role` when none given)."""
    user = user or make_user(role)
    return api_key_create(name="test key", scopes=scopes or ALL_SCOPES, actor=user, **fields)


def api_client(secret: str, *, domain: str = DOMAIN_A, language: str = "en") -> Client:
    return Client(HTTP_HOST=domain, HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_ACCEPT_LANGUAGE=language)


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The one error format: {"error": {"code", "message", ("fields")}}."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "fields"}
    if code is not None:
        assert error["code"] == code, error
    return error
