"""Demo API keys for `make run` (a DEMO_SEED_HOOKS entry; docs/api.md): Hochbahn's control centre
(product.md) and Stuttgart's air-quality network. Only a key's hash is stored, so the secret of a
demo key is written once to DEMO_API_KEY_DIR (var/demo-api-keys/<tenant>.txt) (readable by its owner only), where
the examples in docs/api.md read it; a key whose file is gone is replaced."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings

from accounts.models import ApiKey, User
from accounts.services import api_key_create, api_key_revoke

# tenant → (key name, the demo user it acts as, scopes)
DEMO_KEYS = {
    # acts as the editor `leitstelle`, so the press office (approver) can approve what it writes
    "hochbahn": (
        "Leitstelle (Demo)",
        "leitstelle",
        ["channels:read", "broadcasts:read", "broadcasts:write", "analytics:read"],
    ),
    "stuttgart": ("Luftmessnetz (Demo)", "redaktion", ["channels:read", "channels:write"]),
}


def demo_key_file(schema: str) -> Path:
    return Path(settings.DEMO_API_KEY_DIR) / f"{schema}.txt"


def seed(*, tenant: Any, stdout: Any) -> None:
    spec = DEMO_KEYS.get(tenant.schema_name)
    if spec is None:
        return
    name, username, scopes = spec
    path = demo_key_file(tenant.schema_name)
    current = ApiKey.objects.filter(name=name, revoked_at__isnull=True).first()
    if current is not None and path.exists() and path.read_text().startswith(current.prefix):
        stdout.write(f"{tenant.schema_name}: demo API key in {path}")
        return
    user = User.objects.filter(username=username).first()
    if user is None:  # a tenant seeded without the demo team: no one for the key to act as
        stdout.write(f"{tenant.schema_name}: no user {username}, no demo API key")
        return
    if current is not None:
        api_key_revoke(key=current, actor=None)
    _key, secret = api_key_create(name=name, scopes=scopes, actor=user, rate_limit=600)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret + "\n")
    stdout.write(f"{tenant.schema_name}: demo API key ({', '.join(scopes)}) written to {path}")
