from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from core import crypto


def test_round_trip_of_text_and_json() -> None:
    token = crypto.encrypt_str("geheim")
    assert "geheim" not in token
    assert crypto.decrypt_str(token) == "geheim"
    assert crypto.decrypt_json(crypto.encrypt_json({"access_token": "EAAG", "n": 1})) == {
        "access_token": "EAAG",
        "n": 1,
    }


def test_rotation_keeps_old_secrets_readable_and_moves_them_to_the_new_key() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FERNET_KEYS=[old]):
        token = crypto.encrypt_str("bot-token")
    with override_settings(FERNET_KEYS=[new, old]):
        assert crypto.decrypt_str(token) == "bot-token"  # old key still decrypts
        rotated = crypto.rotate(token)
    with override_settings(FERNET_KEYS=[new]):
        assert crypto.decrypt_str(rotated) == "bot-token"  # old key can now be dropped
        with pytest.raises(crypto.SecretDecryptionError):
            crypto.decrypt_str(token)


def test_missing_or_invalid_keys_give_a_clear_configuration_error() -> None:
    with override_settings(FERNET_KEYS=[]), pytest.raises(ImproperlyConfigured, match="FERNET_KEYS is empty"):
        crypto.encrypt_str("x")
    with override_settings(FERNET_KEYS=["not-a-key"]), pytest.raises(ImproperlyConfigured, match="invalid key"):
        crypto.encrypt_str("x")


def test_tampered_token_is_rejected() -> None:
    token = crypto.encrypt_str("x")
    with pytest.raises(crypto.SecretDecryptionError):
        crypto.decrypt_str(token[:-4] + "AAAA")
