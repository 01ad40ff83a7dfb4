"""Where a tenant may point a connection: provider API bases and SMTP hosts from the allow-lists.

A connection's API base (or an e-mail connection's SMTP host) is where the platform sends the
stored credentials and whose answer "Test connection" reports. If a tenant admin could choose
any address, they could make our servers call internal ones (server-side request forgery). So
every value set from the tenant side must be on an operator's list in settings:

- MESSENGER_API_BASE_ALLOWLIST: base URLs; a value is allowed when its scheme, host and port equal
  an entry's and its path starts with the entry's path (default: the three official APIs).
- MESSENGER_SMTP_HOST_ALLOWLIST: host names, compared exactly (default: none).

Names are compared as written (case-insensitive) and never resolved. A name on a list is
trusted because an operator put it there; every other name, IP literal or spelling of one
(127.1, 2130706433, 0x7f.0.0.1, [::1], "localhost.") is refused whatever it resolves to, so
names that resolve to private addresses and DNS rebinding between check and use have nothing to
work with. Provider calls also never follow redirects (messengers.adapters._http), so an allowed
host cannot pass us on. Operator paths (management commands, scripts, the benchmarks) call the
services with `by_operator=True` and may set any address, e.g. a fake provider on 127.0.0.1.

Media files of inbound messages (`media_url_allowed`) come from the connection's own API host
(scheme, host and port of its API base: Telegram, Twilio's MediaUrl) or from a host on
MESSENGER_MEDIA_HOST_ALLOWLIST (base URLs compared like the API list). WhatsApp needs the list:
Graph answers a media id with a URL on Meta's CDN (lookaside.fbsbx.com), which wants the bearer
token too; Twilio redirects its MediaUrl to its own CDN (fetched without credentials). Redirects
are followed only where an adapter asks for it (Twilio), each hop checked against the same rule.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext_noop

from core.errors import ApplicationError
from core.netguard import UrlParts, url_parts

API_BASE_REFUSED = gettext_noop(
    "The API address {value} is not allowed. Leave the field empty to use the messenger's own API; "
    "other addresses (test servers, proxies) can only be set up by the platform operator."
)
SMTP_HOST_REFUSED = gettext_noop(
    "The SMTP server {value} is not on this platform's list of allowed mail servers. "
    "Ask the platform operator to allow it or to set up the e-mail connection for you."
)


def _covers(entry: UrlParts, other: UrlParts) -> bool:
    return (
        (entry.scheme, entry.host, entry.port) == (other.scheme, other.host, other.port)
        and (other.path == entry.path or other.path.startswith(entry.path + "/"))
    )  # fmt: skip


def _parse(value: str, *, query: bool = False) -> UrlParts | None:
    """The parts of a plain http(s) URL (core.netguard's parser), or None. A query string is
    refused unless `query` (media URLs carry signatures in theirs)."""
    if "?" in value and not query:
        return None
    return url_parts(value)


def api_base_allowed(value: str) -> bool:
    """Whether a tenant may set this API base ("" is the provider's own API)."""
    if value == "":
        return True
    base = _parse(value)
    if base is None:
        return False
    entries = (_parse(entry.strip()) for entry in settings.MESSENGER_API_BASE_ALLOWLIST)
    return any(entry is not None and _covers(entry, base) for entry in entries)


def media_url_allowed(url: str, api_base: str) -> bool:
    """Whether an adapter may download an inbound message's file from `url`: on the API base's
    own origin (scheme, host and port of `api_base`, the provider default when "") or under an
    entry of MESSENGER_MEDIA_HOST_ALLOWLIST."""
    target = _parse(url, query=True)
    if target is None:
        return False
    own = _parse(api_base)
    if own is not None and (own.scheme, own.host, own.port) == (target.scheme, target.host, target.port):
        return True
    entries = (_parse(entry.strip()) for entry in settings.MESSENGER_MEDIA_HOST_ALLOWLIST)
    return any(entry is not None and _covers(entry, target) for entry in entries)


def smtp_host_allowed(value: str) -> bool:
    allowed = {entry.strip().lower() for entry in settings.MESSENGER_SMTP_HOST_ALLOWLIST if entry.strip()}
    return value.strip().lower() in allowed


def api_base_check(value: str) -> None:
    if not api_base_allowed(value):
        raise ApplicationError(API_BASE_REFUSED, params=dict(value=ascii(value) if not value.isprintable() else value))


def smtp_host_check(value: str) -> None:
    if not smtp_host_allowed(value):
        raise ApplicationError(SMTP_HOST_REFUSED, params=dict(value=ascii(value) if not value.isprintable() else value))
