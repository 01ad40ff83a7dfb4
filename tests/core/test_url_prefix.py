"""Access decisions look at the path the URL resolver sees (`path_info`), never at `request.path`,
which also holds SCRIPT_NAME: a prefix that the WSGI server takes from a forwarder's header (or a
deployment under a URL prefix) must neither switch off two-factor enforcement nor let a
suspended tenant's pages through."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from accounts import roles
from tenants.models import Tenant
from tests.factories import make_user
from tests.helpers import enrol_totp

# "" is the plain deployment; "/healthz" and "/static" are the exempt prefixes of the suspension
# notice, "/accounts" the pages two-factor enforcement leaves open.
PREFIXES = ["", "/x", "/newsletter/v1", "/healthz", "/static", "/accounts", "/admin"]
ADMIN_PAGES = ["/admin/", "/admin/accounts/user/", "/admin/settings/", "/admin/accounts/auditevent/"]


def _client(prefix: str, host: str = "tenant-a.localhost") -> Client:
    return Client(HTTP_HOST=host, HTTP_ACCEPT_LANGUAGE="en", SCRIPT_NAME=prefix)


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("role", [roles.ADMIN, roles.APPROVER])
def test_two_factor_is_enforced_under_any_script_name(tenant: Tenant, prefix: str, role: str) -> None:
    user = make_user(role, username=f"boss_{role}")
    client = _client(prefix)
    client.force_login(user)
    for page in ADMIN_PAGES:
        response = client.get(page)
        assert response.status_code == 302, (prefix, page, response.status_code)
        assert "/accounts/2fa/totp/activate/" in response["Location"], (prefix, page)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_operators_must_enrol_two_factor_under_any_script_name(public: Any, prefix: str) -> None:
    from accounts.models import User

    operator = User.objects.create_superuser(username="op", email="op@platform.example", password="x" * 12)
    client = _client(prefix, host="localhost")
    client.force_login(operator)
    for page in ["/admin/", "/admin/tenants/tenant/", "/admin/accounts/user/"]:
        response = client.get(page)
        assert response.status_code == 302 and "/accounts/2fa/totp/activate/" in response["Location"], (prefix, page)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_enrolled_admins_use_the_admin_under_a_prefix(tenant: Tenant, prefix: str) -> None:
    user = make_user(roles.ADMIN, username="enrolled")
    enrol_totp(user)
    client = _client(prefix)
    client.force_login(user)
    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_suspended_tenant_shows_only_the_notice_under_any_script_name(tenant: Tenant, prefix: str) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED, suspended_reason="Vertrag beendet")
    user = make_user(roles.EDITOR, username="editor")
    client = _client(prefix)
    client.force_login(user)
    for page in ["/", *ADMIN_PAGES, "/accounts/login/", "/subscribe/", "/healthzx", "/staticx/y"]:
        response = client.get(page)
        assert response.status_code == 503, (prefix, page, response.status_code)
        assert "Vertrag beendet" in response.content.decode()
    assert client.get("/healthz").status_code == 200  # load balancers still get an answer


# --------------------------------------------------------------------------------------------
# The class: no project code decides on request.path or get_full_path()
# --------------------------------------------------------------------------------------------
PROJECT_PACKAGES = ["accounts", "broadcasts", "channels", "config", "core", "messengers", "subscribers", "tenants"]
TESTS = {"startswith", "endswith", "match", "fullmatch", "search"}


def _is_full_path(node: ast.AST) -> bool:
    """`<x>.path` or `<x>.get_full_path()`: the URL with SCRIPT_NAME."""
    if isinstance(node, ast.Attribute) and node.attr == "path":
        return isinstance(node.value, ast.Name) and node.value.id == "request"
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get_full_path"


def _is_decision(node: ast.AST) -> bool:
    if isinstance(node, ast.Compare):
        return any(_is_full_path(n) for n in [node.left, *node.comparators])
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in TESTS
        and (_is_full_path(node.func.value) or any(_is_full_path(arg) for arg in node.args))
    )


def _decisions(tree: ast.AST) -> list[int]:
    return sorted(node.lineno for node in ast.walk(tree) if _is_decision(node))  # type: ignore[attr-defined]


def test_no_code_decides_on_the_path_with_script_name() -> None:
    found = []
    for package in PROJECT_PACKAGES:
        for file in sorted((Path(settings.BASE_DIR) / package).rglob("*.py")):
            if "migrations" in file.parts:
                continue
            found += [
                f"{file.relative_to(settings.BASE_DIR)}:{line}" for line in _decisions(ast.parse(file.read_text()))
            ]
    assert not found, "use request.path_info (or the resolver match) to decide access: " + ", ".join(found)


def test_the_source_check_recognises_a_decision_on_request_path() -> None:
    sample = "if request.path.startswith('/admin/'):\n    pass\nok = request.get_full_path() == '/x'\n"
    assert _decisions(ast.parse(sample)) == [1, 3]
    assert _decisions(ast.parse("if request.path_info.startswith('/admin/'):\n    pass\n")) == []
