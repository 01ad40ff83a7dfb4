"""A table of host names for outgoing-webhook tests: settings.NETGUARD_RESOLVER points here, so a
test decides what a name resolves to (and what it resolves to a moment later) without DNS."""

from __future__ import annotations

import socket

NAMES: dict[str, list[str]] = {}


def table_resolve(host: str, port: int) -> list[str]:
    """core.netguard's resolver contract: the addresses of `host`, or OSError like getaddrinfo."""
    if host not in NAMES:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return list(NAMES[host])
