"""get_adapter: the provider → adapter registry, and secrets kept out of reprs."""

from __future__ import annotations

import pytest

from messengers.adapters import ADAPTERS, adapter_class, get_adapter
from messengers.adapters.base import ConnectionConfig, Provider
from messengers.adapters.email import EmailAdapter
from messengers.adapters.telegram import TelegramAdapter
from messengers.adapters.twilio import TwilioAdapter
from messengers.adapters.whatsapp import WhatsAppAdapter


@pytest.mark.parametrize(
    ("provider", "cls"),
    [
        (Provider.WHATSAPP, WhatsAppAdapter),
        (Provider.TELEGRAM, TelegramAdapter),
        (Provider.SMS, TwilioAdapter),
        (Provider.EMAIL, EmailAdapter),
    ],
)
def test_get_adapter_builds_the_registered_class(provider: Provider, cls: type) -> None:
    secret = "s3cr3t-value-never-shown"
    config = ConnectionConfig(
        provider=provider,
        credentials={"access_token": secret, "bot_token": f"1:{secret}", "auth_token": secret, "password": secret},
        external_id="x@example.org",
        connection_id=9,
    )
    adapter = get_adapter(config)
    assert type(adapter) is cls and adapter.config is config
    assert adapter_class(provider.value) is cls
    assert secret not in repr(adapter) and secret not in repr(config)
    assert "connection=9" in repr(adapter)


def test_every_provider_is_registered_and_unknown_ones_are_refused() -> None:
    assert set(ADAPTERS) == set(Provider)
    with pytest.raises(ValueError):
        adapter_class("pigeon")
