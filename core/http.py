"""Small typed helpers for views and admin code: the signed-in user, the client's address, and
the request's metadata that services record (services take `RequestMeta`, never a request)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest

if TYPE_CHECKING:
    # django-stubs' name for settings.AUTH_USER_MODEL, so core names no app
    from django.contrib.auth.models import _User


def request_user(request: HttpRequest) -> _User | None:
    """The signed-in user of a request, or None (typed as the project's user model)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return cast("_User", user)


def host_base_url(host: str) -> str:
    """Absolute base URL of `host`, with the scheme and port of PUBLIC_URL. The one rule for
    absolute links; tenants.selectors.tenant_base_url applies it to a tenant's domain."""
    parts = urlsplit(settings.PUBLIC_URL)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def request_base_url(request: HttpRequest) -> str:
    """host_base_url of the domain the request came to (its Host header without the port)."""
    return host_base_url(request.get_host().split(":")[0])


def _ip(value: str) -> str | None:
    """The address in `value` ("192.0.2.1", "192.0.2.1:5678", "[2001:db8::1]:443"), or None."""
    value = value.strip()
    candidates = [value]
    if value.startswith("[") and "]" in value:
        candidates.append(value[1 : value.index("]")])
    elif value.count(":") == 1:
        candidates.append(value.partition(":")[0])
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


def client_ip(request: HttpRequest) -> str | None:
    """The address of the client that sent the request.

    Behind TRUSTED_PROXY_COUNT proxies of our own (each appends the address it received the
    request from to X-Forwarded-For), that is the TRUSTED_PROXY_COUNT-th entry from the right;
    entries further left come from the client and prove nothing. Without trusted proxies the
    header is ignored, since anyone can send it, and the peer address counts."""
    count: int = settings.TRUSTED_PROXY_COUNT
    if count > 0:
        forwarded = [part for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if forwarded:
            found = _ip(forwarded[-count] if len(forwarded) >= count else forwarded[0])
            if found:
                return found
    return _ip(request.META.get("REMOTE_ADDR", ""))


def client_network(request: HttpRequest) -> str:
    """What per-client limits count: the client's IPv4 address, or its IPv6 /64 (one household or
    machine gets a whole /64 and can pick any address in it)."""
    address = client_ip(request)
    if address is None:
        return "unknown"
    parsed = ipaddress.ip_address(address)
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return address


@dataclass(frozen=True)
class RequestMeta:
    """What a service may record about the request that caused it (for the audit log)."""

    ip: str | None = None
    user_agent: str = ""


def request_meta(request: HttpRequest | None) -> RequestMeta | None:
    """The metadata of a request for a service call; None outside a request (tasks, commands)."""
    if request is None:
        return None
    return RequestMeta(ip=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT", "")[:300])
