"""Small helpers shared by tests (two-factor codes, URL patterns filled with test values, signed-in
admins and the query count of an admin page)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
import time

from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.db import connection as db_connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts import roles
from accounts.models import User
from tests.factories import make_user


def enrol_totp(user: User) -> str:
    """Give the user an authenticator app, as the 2FA set-up page would; returns the secret."""
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def totp_code(secret: str, *, at: float | None = None) -> str:
    """RFC 6238 code, computed independently of allauth (what an authenticator app shows)."""
    counter = int((time.time() if at is None else at) // 30)
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def totp_code_lasting(secret: str, seconds: float = 8.0) -> str:
    """A code still valid for at least `seconds`: allauth accepts only the current 30-second
    window, so a code typed just before the window turns (on a busy machine) is refused."""
    left = 30 - time.time() % 30
    if left < seconds:
        time.sleep(left + 0.1)
    return totp_code(secret)


# --------------------------------------------------------------------------------------------
# URL patterns
# --------------------------------------------------------------------------------------------
ROUTE_PARAMETER = re.compile(r"<(?:(\w+):)?(\w+)>")
_REGEX_GROUP = re.compile(r"\(\?P<\w+>[^)]*\)")


def fill_route(route: str, value: str) -> str | None:
    """The URL path of `route` with every parameter set to `value`, or None when the URL resolver
    could never pass that value to the view (Django's converters and regexes check it first)."""
    if "RE:" in route:
        head, _, regex = route.partition("RE:")
        body = regex.lstrip("^").rstrip("$")
        filled = _REGEX_GROUP.sub(lambda _m: value, body)
        return f"/{head}{filled}" if re.fullmatch(body, filled) else None
    converters = {"int": r"[0-9]+", "slug": r"[-a-zA-Z0-9_]+", "str": r"[^/]+", "path": r".+", None: r"[^/]+"}
    for match in ROUTE_PARAMETER.finditer(route):
        if not re.fullmatch(converters.get(match.group(1), r"[^/]+"), value):
            return None
    return "/" + ROUTE_PARAMETER.sub(lambda _m: value, route)


def signed_in_admin(client: Client) -> Client:
    """`client` signed in as a new tenant admin with two-factor set up (call inside the tenant)."""
    user = make_user(roles.ADMIN)
    enrol_totp(user)
    client.force_login(user)
    return client


def query_count(client: Client, url: str) -> tuple[int, str]:
    """Queries of one GET of `url` (after a first GET that warms the domain cache), and the page."""
    client.get(url)  # the first request of a client also resolves the domain (cached afterwards)
    with CaptureQueriesContext(db_connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response
    return len(queries.captured_queries), response.content.decode()
