"""How outgoing webhooks are signed (documented for receivers in docs/api.md, "Verifying an
outgoing webhook"; the test suite runs that page's verifier against real deliveries).

    Webhook-Signature: v1=<hex HMAC-SHA256 of "<Webhook-Timestamp>.<body>">

The key is the endpoint's secret as written (UTF-8, "whsec_" prefix included); the signed text
is the timestamp header's value, a full stop, and the exact bytes of the body. During the day
after a secret was rotated, the header carries one signature per valid secret, separated by
spaces: a receiver accepts the request when any of them matches.
"""

from __future__ import annotations

import hashlib
import hmac


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secrets: list[str], timestamp: int, body: bytes) -> str:
    return " ".join(f"v1={signature(secret, timestamp, body)}" for secret in secrets)
