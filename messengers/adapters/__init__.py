"""Provider adapters: `get_adapter(config)` returns the adapter for a connection's provider.

The registry maps each provider to a dotted path; classes are imported on first use, so a
provider's module (and its dependencies) only loads when a connection of that provider exists.
"""

from __future__ import annotations

from importlib import import_module

from messengers.adapters.base import Adapter, ConnectionConfig, Provider

ADAPTERS: dict[Provider, str] = {
    Provider.WHATSAPP: "messengers.adapters.whatsapp.WhatsAppAdapter",
    Provider.TELEGRAM: "messengers.adapters.telegram.TelegramAdapter",
    Provider.SMS: "messengers.adapters.twilio.TwilioAdapter",
    Provider.EMAIL: "messengers.adapters.email.EmailAdapter",
    Provider.SANDBOX: "messengers.adapters.sandbox.SandboxAdapter",
}

_classes: dict[Provider, type[Adapter]] = {}


def adapter_class(provider: Provider | str) -> type[Adapter]:
    """The adapter class registered for a provider (imported lazily, then cached)."""
    key = Provider(provider)
    cls = _classes.get(key)
    if cls is None:
        try:
            path = ADAPTERS[key]
        except KeyError:
            raise LookupError(f"no adapter registered for provider {key.value!r}") from None
        module_name, _, class_name = path.rpartition(".")
        cls = getattr(import_module(module_name), class_name)
        _classes[key] = cls
    return cls


def get_adapter(config: ConnectionConfig) -> Adapter:
    return adapter_class(config.provider)(config)


__all__ = ["ADAPTERS", "adapter_class", "get_adapter"]
