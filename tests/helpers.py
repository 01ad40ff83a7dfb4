"""Small helpers shared by tests (two-factor codes)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time

from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

from accounts.models import User


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
