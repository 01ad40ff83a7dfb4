"""Demo connections for `manage.py seed_demo` (settings.DEMO_SEED_HOOKS, before channels.demo):
sandbox connections that the demo's subscribe page shows as WhatsApp, Telegram and e-mail, so
visitors see what citizens really get (buttons, QR codes, the e-mail form) while every message
goes to the phone simulator. Only honoured while settings.DEMO_MODE is on."""

from __future__ import annotations

from typing import Any

from messengers.services import sandbox_demo_lookalikes_ensure


def seed(*, tenant: Any, stdout: Any) -> None:
    looks = sandbox_demo_lookalikes_ensure()
    stdout.write(f"{tenant.schema_name}: demo look-alikes {', '.join(c.name for c in looks)} ready")
