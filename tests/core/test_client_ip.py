"""core.http.client_ip: the client's address behind TRUSTED_PROXY_COUNT proxies of ours, never an
address the client wrote itself; client_network groups an IPv6 client's /64."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpRequest
from django.test import RequestFactory, override_settings

from core.http import client_ip, client_network


def _request(remote: str = "127.0.0.1", forwarded: str | None = None) -> HttpRequest:
    extra: dict[str, Any] = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize(
    ("count", "remote", "forwarded", "expected"),
    [
        (0, "192.0.2.1", None, "192.0.2.1"),
        (0, "192.0.2.1", "198.51.100.7", "192.0.2.1"),  # nobody vouches for the header
        (1, "127.0.0.1", None, "127.0.0.1"),  # reached us without the proxy
        (1, "127.0.0.1", "198.51.100.7", "198.51.100.7"),
        (1, "127.0.0.1", "10.9.9.9, 198.51.100.7", "198.51.100.7"),  # the client's own entry is ignored
        (1, "127.0.0.1", "10.9.9.9,198.51.100.7", "198.51.100.7"),
        (1, "127.0.0.1", "198.51.100.7:51234", "198.51.100.7"),
        (1, "127.0.0.1", "[2001:db8::7]:443", "2001:db8::7"),
        (1, "127.0.0.1", "2001:DB8::7", "2001:db8::7"),
        (1, "127.0.0.1", "not-an-address", "127.0.0.1"),
        (1, "127.0.0.1", "198.51.100.7, not-an-address", "127.0.0.1"),
        (1, "127.0.0.1", " , ", "127.0.0.1"),
        (2, "127.0.0.1", "10.9.9.9, 198.51.100.7, 10.0.0.2", "198.51.100.7"),
        (2, "127.0.0.1", "198.51.100.7", "198.51.100.7"),
        (0, "", None, None),
    ],
)
def test_client_ip(count: int, remote: str, forwarded: str | None, expected: str | None) -> None:
    with override_settings(TRUSTED_PROXY_COUNT=count):
        assert client_ip(_request(remote, forwarded)) == expected


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_client_network_groups_an_ipv6_clients_64() -> None:
    one = client_network(_request(forwarded="2001:db8:1:2::1"))
    assert one == client_network(_request(forwarded="2001:db8:1:2:ffff:ffff:ffff:ffff"))
    assert one != client_network(_request(forwarded="2001:db8:1:3::1"))
    assert client_network(_request(forwarded="198.51.100.7")) == "198.51.100.7"
    assert client_network(_request(remote="", forwarded="junk")) == "unknown"
