"""Secrets at rest: Fernet with several keys (MultiFernet), newest first.

`FERNET_KEYS` (environment, comma-separated) holds the keys. Encryption always uses the first;
decryption tries each in turn, so rotating means: prepend a new key, deploy, run
`manage.py rotate_secrets` (re-encrypts every stored secret with the new key), then drop the
old key. Plaintext never leaves this module except to the caller who asked for it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "SecretDecryptionError",
    "decrypt_json",
    "decrypt_str",
    "encrypt_json",
    "encrypt_str",
    "generate_key",
    "rotate",
]


class SecretDecryptionError(Exception):
    """A stored secret cannot be read with any configured key (key removed too early?)."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured(
            "FERNET_KEYS is empty: set it (comma-separated Fernet keys, newest first) to store provider credentials. "
            "Generate one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        )
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"FERNET_KEYS contains an invalid key: {exc}") from exc


def _box() -> MultiFernet:
    return _fernet(tuple(k.strip() for k in settings.FERNET_KEYS if k.strip()))


def encrypt_str(plaintext: str) -> str:
    return _box().encrypt(plaintext.encode()).decode()


def decrypt_str(token: str) -> str:
    try:
        return _box().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError("stored secret cannot be decrypted with any key in FERNET_KEYS") from exc


def encrypt_json(value: dict[str, Any]) -> str:
    return encrypt_str(json.dumps(value, separators=(",", ":"), sort_keys=True))


def decrypt_json(token: str) -> dict[str, Any]:
    if not token:
        return {}
    data = json.loads(decrypt_str(token))
    if not isinstance(data, dict):
        raise SecretDecryptionError("stored secret is not a JSON object")
    return data


def rotate(token: str) -> str:
    """Re-encrypt `token` with the newest key (no-op on the plaintext)."""
    try:
        return _box().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError("stored secret cannot be decrypted with any key in FERNET_KEYS") from exc
