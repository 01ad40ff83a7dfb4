"""Which addresses the platform may call on a tenant's behalf (server-side request forgery).

Two callers share these rules. Messenger connections (messengers.endpoints) accept only API bases
on an operator's allow-list and never resolve names. Outgoing webhooks (messengers.outgoing)
accept any HTTPS URL on a public address: the name is resolved when the URL is saved and again
at every delivery, and the request goes to the address that was checked (so a name that
resolves to a public address at the check and to 127.0.0.1 a moment later, DNS rebinding, has
nothing to work with).

- `url_parts`: the one parser of a plain http(s) URL (no user info, no whitespace or control
  characters, no backslashes, an ASCII host name or IP literal). Anything unusual is None.
- `ipv4_spelling`: a host that is an IPv4 address in a form other than a.b.c.d (2130706433,
  0x7f.1, 017700000001, 127.1): browsers and resolvers read these as addresses, so they count.
- `address_is_public`: False for loopback, private, link-local, carrier-grade NAT, multicast,
  unspecified, reserved, documentation and benchmark ranges, cloud metadata addresses, and for
  IPv6 addresses that carry such an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo).
- `resolve`: the addresses of a name through settings.NETGUARD_RESOLVER (a dotted path, so tests
  can point it at their own table of names instead of the machine's DNS).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.module_loading import import_string

DEFAULT_PORTS = {"http": 80, "https": 443}
HOST_NAME = re.compile(r"^[a-z0-9.-]+$")
IPV4_PART = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

# Refused whatever Python's is_global says (its table differs between patch releases).
_REFUSED_NETWORKS = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT (and Alibaba's metadata 100.100.100.200)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments (Oracle's metadata 192.0.0.192)
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/128",
        "::1/128",
        "::/96",  # IPv4-compatible (deprecated)
        "100::/64",  # discard
        "2001:db8::/32",
        "fc00::/7",  # unique local (AWS metadata fd00:ec2::254)
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class UrlParts:
    scheme: str
    host: str  # lower case; an IPv6 literal without its brackets
    port: int
    path: str  # without a trailing slash


def url_parts(value: str) -> UrlParts | None:
    """The parts of a plain http(s) URL, or None for anything unusual (callers refuse it)."""
    if not value or not value.isascii() or any(c.isspace() or c == "\\" or ord(c) < 32 for c in value):
        return None
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or "@" in parts.netloc or parts.fragment:
        return None
    host = parts.hostname or ""
    if host.startswith("[") or ":" in host:
        try:
            host = str(ipaddress.IPv6Address(host.strip("[]")))
        except ValueError:
            return None
    elif not HOST_NAME.match(host):
        return None
    return UrlParts(parts.scheme, host, port or DEFAULT_PORTS[parts.scheme], parts.path.rstrip("/"))


def ipv4_spelling(host: str) -> bool:
    """Whether `host` spells an IPv4 address some other way than a.b.c.d: a number, hex or octal
    parts, fewer than four parts (the forms inet_aton and the URL standard accept)."""
    labels = host.rstrip(".").split(".")
    if not labels or not IPV4_PART.match(labels[-1]):
        return False  # a name: its last label is not a number
    try:
        return str(ipaddress.IPv4Address(host)) != host
    except ValueError:
        return True


def ip_literal(host: str) -> IP | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def address_is_public(address: IP) -> bool:
    """Whether we may connect to `address` on a tenant's behalf."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not address_is_public(embedded):
            return False
    if any(address.version == net.version and address in net for net in _REFUSED_NETWORKS):
        return False
    return bool(address.is_global) and not address.is_multicast


def system_resolve(host: str, port: int) -> list[str]:
    """The machine's resolver (getaddrinfo), TCP addresses only."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class ResolveError(Exception):
    """The name does not resolve (or the resolver failed)."""


def resolve(host: str, port: int) -> list[IP]:
    """Every address `host` resolves to, through settings.NETGUARD_RESOLVER."""
    resolver = import_string(settings.NETGUARD_RESOLVER)
    try:
        found = resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise ResolveError(str(exc)) from exc
    addresses = [a for a in (ip_literal(str(v).split("%")[0]) for v in found) if a is not None]
    if not addresses:
        raise ResolveError(f"{host} has no address")
    return addresses
