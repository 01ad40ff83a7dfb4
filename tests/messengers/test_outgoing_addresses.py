"""Where outgoing webhooks may point: https on public addresses only, every spelling of a
non-public address refused, names checked through the resolver (core.netguard), and the
connection API bases still on their allow-list after the shared parser moved to core."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import netguard
from messengers.endpoints import api_base_allowed
from messengers.outgoing import transport
from tests.messengers import outgoing_support

REFUSED_LITERALS = [
    "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.1.1", "169.254.169.254",
    "169.254.1.1", "100.64.0.1", "100.100.100.200", "0.0.0.0", "0.1.2.3"  # noqa: S104
   , "224.0.0.1", "239.255.255.250",
    "255.255.255.255", "240.0.0.1", "192.0.0.192", "198.18.0.1",
    "[::1]", "[::]", "[fe80::1]", "[fd00:ec2::254]", "[fc00::1]", "[ff02::1]", "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]", "[::ffff:10.1.2.3]", "[::ffff:169.254.169.254]", "[64:ff9b::a00:1]", "[2002:7f00:1::]",
    "[2002:a9fe:a9fe::1]", "[2001:db8::1]", "[::127.0.0.1]",
]  # fmt: skip
ODD_SPELLINGS = ["2130706433", "0x7f000001", "017700000001", "0x7f.0.0.1", "0177.0.0.1", "127.1", "127.0.1", "0x7f.1"]


@pytest.fixture
def names(settings: Any) -> Iterator[dict[str, list[str]]]:
    settings.NETGUARD_RESOLVER = "tests.messengers.outgoing_support.table_resolve"
    outgoing_support.NAMES.clear()
    yield outgoing_support.NAMES
    outgoing_support.NAMES.clear()


@pytest.mark.parametrize("host", REFUSED_LITERALS)
def test_non_public_ip_literals_are_refused(names: dict[str, list[str]], host: str) -> None:
    with pytest.raises(transport.RefusedError) as refused:
        transport.target_check(f"https://{host}/hook")
    assert refused.value.template == transport.URL_NOT_PUBLIC


@pytest.mark.parametrize("host", ODD_SPELLINGS)
def test_other_spellings_of_ipv4_addresses_are_refused(names: dict[str, list[str]], host: str) -> None:
    with pytest.raises(transport.RefusedError) as refused:
        transport.target_check(f"https://{host}/hook")
    assert refused.value.template == transport.URL_IP_SPELLING


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.9.8.7", "169.254.169.254", "::1", "::ffff:127.0.0.1", "fd00:ec2::254", "100.64.1.1"]
)
def test_names_resolving_to_non_public_addresses_are_refused(names: dict[str, list[str]], address: str) -> None:
    names["internal.example.org"] = ["93.184.215.14", address]  # one bad address among good ones is enough
    with pytest.raises(transport.RefusedError) as refused:
        transport.target_check("https://internal.example.org/hook")
    assert refused.value.template == transport.URL_NOT_PUBLIC
    assert refused.value.params["address"] == str(netguard.ip_literal(address))


def test_a_public_https_url_is_accepted_and_pinned_to_its_address(names: dict[str, list[str]]) -> None:
    names["crm.example.org"] = ["93.184.215.14"]
    target = transport.target_check("https://crm.example.org:8443/hooks/mnl?tenant=1")
    assert (target.address, target.parts.host, target.parts.port, target.path) == (
        "93.184.215.14", "crm.example.org", 8443, "/hooks/mnl?tenant=1",
    )  # fmt: skip
    assert transport.target_check("https://[2606:4700::1111]/").address == "2606:4700::1111"


@pytest.mark.parametrize(
    ("url", "template"),
    [
        ("http://crm.example.org/hook", transport.URL_NOT_HTTPS),
        ("ftp://crm.example.org/hook", transport.URL_INVALID),
        ("https://user:pw@crm.example.org/hook", transport.URL_INVALID),
        ("https://crm.example.org\\@127.0.0.1/", transport.URL_INVALID),
        ("https://crm.example.org/ho ok", transport.URL_INVALID),
        ("https://crm.example.org/hook#x", transport.URL_INVALID),
        ("https://crm.exämple.org/hook", transport.URL_INVALID),
        ("https://unknown.example.org/hook", transport.URL_NOT_RESOLVED),
        ("", transport.URL_INVALID),
    ],
)
def test_unusual_urls_are_refused(names: dict[str, list[str]], url: str, template: str) -> None:
    names["crm.example.org"] = ["93.184.215.14"]
    with pytest.raises(transport.RefusedError) as refused:
        transport.target_check(url)
    assert refused.value.template == template


def test_the_test_receiver_exemption_is_off_by_default_and_exact(names: dict[str, list[str]], settings: Any) -> None:
    names["receiver.test"] = ["127.0.0.1"]
    with pytest.raises(transport.RefusedError):
        transport.target_check("http://receiver.test:8080/hook")
    settings.OUTGOING_WEBHOOK_TEST_RECEIVER = "127.0.0.1:8080"
    assert transport.target_check("http://receiver.test:8080/hook").address == "127.0.0.1"
    with pytest.raises(transport.RefusedError):  # another port of loopback stays refused
        transport.target_check("http://receiver.test:8081/hook")


PRODUCTION_WITH_RECEIVER = """
import config.settings.base as base
base.OUTGOING_WEBHOOK_TEST_RECEIVER = {value!r}
try:
    import config.settings.production
except Exception as exc:
    print(type(exc).__name__, exc)
else:
    print("loaded")
"""


@pytest.mark.parametrize(("value", "expected"), [("", "loaded"), ("127.0.0.1:8080", "ImproperlyConfigured")])
def test_production_settings_refuse_the_test_receiver(value: str, expected: str) -> None:
    env = {
        **os.environ, "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "example.org", "METRICS_TOKEN": "m" * 32,
        "FERNET_KEYS": "pGk8eU3l0ay6Vd7pRj0mVxS9j0bZlO8wq3d3ZqkQf1Y=",
    }  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", PRODUCTION_WITH_RECEIVER.format(value=value)],
        capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[2], timeout=60, check=False,
    )  # fmt: skip
    assert result.stdout.startswith(expected), result.stdout + result.stderr


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_every_ipv4_address_is_judged_the_same_in_every_spelling(value: int) -> None:
    address = netguard.ipaddress.IPv4Address(value)
    mapped = netguard.ipaddress.IPv6Address(f"::ffff:{address}")
    assert netguard.address_is_public(mapped) == netguard.address_is_public(address)
    assert netguard.ipv4_spelling(str(value)) or str(value) == str(address)


def test_connection_api_bases_still_use_the_allow_list(settings: Any) -> None:
    settings.MESSENGER_API_BASE_ALLOWLIST = ["https://graph.facebook.com"]
    assert api_base_allowed("https://graph.facebook.com/v21.0")
    assert not api_base_allowed("https://graph.facebook.com.evil.example/")
    assert not api_base_allowed("https://graph.facebook.com/?x=1")
    assert not api_base_allowed("http://[::1]/")
