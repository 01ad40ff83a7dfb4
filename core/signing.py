"""Signatures bound to a tenant: the one signing scheme for every link we hand out (subscribers'
personal links, tracked broadcast links).

Django's signing (HMAC-SHA256 keyed with SECRET_KEY), salted with what the signature is for and
the tenant schema: a signature made for tenant A, or for another purpose, never matches on B or
for this one. Callers compare with `django.utils.crypto.constant_time_compare`.
"""

from __future__ import annotations

from django.core import signing


def tenant_signature(value: str, *, purpose: str, schema: str, length: int | None = None) -> str:
    """The URL-safe signature of `value` for `purpose` in `schema`. `length` keeps only a prefix,
    for links that must stay short (SMS); 12 characters still carry 72 bits."""
    signature = signing.Signer(salt=f"{purpose}.{schema}").signature(value)
    return signature[:length] if length else signature
