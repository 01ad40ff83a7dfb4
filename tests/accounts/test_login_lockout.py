"""Login lockout: five failures lock the account (tenant + user), however the attacker spells the
login (username or e-mail, any case) and whatever Host header or port the request names; the
per-IP limit counts each client behind the trusted TLS proxy on its own and ignores
X-Forwarded-For from anyone else."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client, override_settings

from accounts import roles
from accounts.models import User
from tenants.models import Tenant
from tests.conftest import in_tenant
from tests.factories import PASSWORD, make_user

FAILURES_PER_ACCOUNT = 5
FAILURES_PER_IP = 20
PROXY = "127.0.0.1"


@pytest.fixture(autouse=True)
def _no_earlier_failures() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def login(client: Client, identifier: str, password: str = PASSWORD, **extra: Any) -> Any:
    return client.post("/accounts/login/", {"login": identifier, "password": password}, **extra)


def signed_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


def _client(host: str = "tenant-a.localhost") -> Client:
    return Client(HTTP_HOST=host, HTTP_ACCEPT_LANGUAGE="en")


@pytest.mark.parametrize(
    "spellings",
    [
        ["target", "target@example.org"],
        ["target", "TARGET", "Target", "tArGeT"],
        ["target@example.org", "TARGET@EXAMPLE.ORG", "Target@Example.Org"],
        ["TARGET@example.org", "target", " target ", "Target"],
    ],
)
def test_failures_count_for_the_account_however_the_login_is_spelled(tenant: Tenant, spellings: list[str]) -> None:
    make_user(roles.EDITOR, username="target")
    client = _client()
    for attempt in range(FAILURES_PER_ACCOUNT):
        login(client, spellings[attempt % len(spellings)], "wrong-password")
    for spelling in ("target", "target@example.org"):
        login(client, spelling)  # the right password no longer helps
        assert not signed_in(client), spelling


@pytest.mark.parametrize(
    "hosts",
    [
        ["tenant-a.localhost", "tenant-a.localhost:8000"],
        ["tenant-a.localhost:1", "tenant-a.localhost:443", "tenant-a.localhost:8443", "tenant-a.localhost:65535"],
    ],
)
def test_failures_count_for_the_account_whatever_host_port_the_request_names(tenant: Tenant, hosts: list[str]) -> None:
    make_user(roles.EDITOR, username="target")
    for attempt in range(FAILURES_PER_ACCOUNT):
        login(_client(hosts[attempt % len(hosts)]), "target", "wrong-password")
    for host in hosts:
        client = _client(host)
        login(client, "target")
        assert not signed_in(client), host


def test_a_locked_account_does_not_lock_others_nor_the_same_name_in_another_tenant(
    tenant: Tenant, tenant_b: Tenant
) -> None:
    make_user(roles.EDITOR, username="target")
    make_user(roles.EDITOR, username="bystander")
    with in_tenant(tenant_b):
        make_user(roles.EDITOR, username="target")
    for _ in range(FAILURES_PER_ACCOUNT):
        login(_client(), "target", "wrong-password")
    other = _client()
    login(other, "bystander")
    assert signed_in(other)
    in_b = _client("tenant-b.localhost")
    login(in_b, "target")
    assert signed_in(in_b)


def test_a_successful_login_does_not_reset_the_count(tenant: Tenant) -> None:
    """allauth rolls back the attempt of a successful login, never the failures before it."""
    make_user(roles.EDITOR, username="target")
    for _ in range(FAILURES_PER_ACCOUNT - 1):
        login(_client(), "target", "wrong-password")
    owner = _client()
    login(owner, "target")
    assert signed_in(owner)
    login(_client(), "target@example.org", "wrong-password")
    late = _client()
    login(late, "target")
    assert not signed_in(late)


def test_unknown_logins_are_limited_too_and_lock_no_real_account(tenant: Tenant) -> None:
    make_user(roles.EDITOR, username="target")
    for _ in range(FAILURES_PER_ACCOUNT + 2):
        response = login(_client(), "nobody@example.org", "wrong-password")
    assert "Too many failed login attempts" in response.content.decode()
    owner = _client()
    login(owner, "target")
    assert signed_in(owner)


def test_password_reset_clears_the_lock_of_the_account(tenant: Tenant) -> None:
    """allauth clears the lock when the password is reset through the mailed link; it must find the
    same counter under our key (it asks with the e-mail address)."""
    from allauth.account.adapter import get_adapter
    from django.test import RequestFactory

    user = make_user(roles.EDITOR, username="target")
    for _ in range(FAILURES_PER_ACCOUNT):
        login(_client(), "target", "wrong-password")
    request = RequestFactory().post("/", REMOTE_ADDR="192.0.2.1")
    request.user = user
    get_adapter(request)._delete_login_attempts_cached_email(request, email=user.email)
    owner = _client()
    login(owner, "target")
    assert signed_in(owner)


# --------------------------------------------------------------------------------------------
# Per IP: each client behind the documented TLS proxy has its own bucket
# --------------------------------------------------------------------------------------------
def _fail_from(forwarded_for: str | None, *, remote: str = PROXY, count: int = FAILURES_PER_IP) -> None:
    extra = {"REMOTE_ADDR": remote}
    if forwarded_for is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded_for
    for number in range(count):
        login(_client(), f"nobody{number}", "wrong-password", **extra)


def _can_sign_in(username: str, forwarded_for: str | None, *, remote: str = PROXY) -> bool:
    extra = {"REMOTE_ADDR": remote}
    if forwarded_for is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded_for
    client = _client()
    login(client, username, **extra)
    return signed_in(client)


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_behind_the_proxy_each_client_has_its_own_per_ip_limit(tenant: Tenant) -> None:
    make_user(roles.EDITOR, username="alice")
    _fail_from("198.51.100.7")
    assert not _can_sign_in("alice", "198.51.100.7")  # that client is limited …
    assert _can_sign_in("alice", "203.0.113.9")  # … the others behind the same proxy are not
    assert _can_sign_in("alice", "2001:db8:1::1")


@override_settings(TRUSTED_PROXY_COUNT=1)
@pytest.mark.parametrize(
    "spoofed",
    [
        "10.0.0.{n}, 198.51.100.7",  # the client sends its own X-Forwarded-For; the proxy appends
        "{n}.{n}.{n}.{n},198.51.100.7",
        "garbage-{n}, 198.51.100.7",
    ],
)
def test_a_client_cannot_get_fresh_tries_by_sending_its_own_forwarded_for(tenant: Tenant, spoofed: str) -> None:
    make_user(roles.EDITOR, username="alice")
    for number in range(FAILURES_PER_IP):
        login(
            _client(), f"nobody{number}", "wrong-password",
            REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=spoofed.format(n=number + 1),
        )  # fmt: skip
    assert not _can_sign_in("alice", "198.51.100.7")


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_ipv6_clients_are_limited_per_network_not_per_address(tenant: Tenant) -> None:
    make_user(roles.EDITOR, username="alice")
    for number in range(FAILURES_PER_IP):
        login(
            _client(), f"nobody{number}", "x", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"2001:db8:1:2::{number + 1:x}"
        )
    assert not _can_sign_in("alice", "2001:db8:1:2::ffff")
    assert _can_sign_in("alice", "2001:db8:1:3::1")


@pytest.mark.parametrize("forwarded", ["198.51.100.{n}", "2001:db8::{n}", "203.0.113.{n}, 198.51.100.{n}"])
def test_without_trusted_proxies_forwarded_for_is_ignored(tenant: Tenant, forwarded: str) -> None:
    make_user(roles.EDITOR, username="alice")
    for number in range(FAILURES_PER_IP):
        login(
            _client(),
            f"nobody{number}",
            "x",
            REMOTE_ADDR="192.0.2.1",
            HTTP_X_FORWARDED_FOR=forwarded.format(n=number + 1),
        )
    assert not _can_sign_in("alice", "198.51.100.250", remote="192.0.2.1")
    assert _can_sign_in("alice", None, remote="192.0.2.2")


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_the_audit_log_records_the_client_not_the_proxy(tenant: Tenant) -> None:
    from accounts.models import AuditEvent

    make_user(roles.EDITOR, username="alice")
    login(_client(), "alice", "wrong-password", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.7")
    event = AuditEvent.objects.filter(action="auth.login_failed").latest("pk")
    assert event.ip_address == "198.51.100.7"
    assert User.objects.filter(username="alice").exists()
