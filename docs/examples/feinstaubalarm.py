"""Raise (or end) Stuttgart's Feinstaubalarm from an air-quality system (docs/api.md).

Against `make run`: python docs/examples/feinstaubalarm.py active "PM10 over 50 µg/m³ at Neckartor"
Settings from the environment: MNL_API (server), MNL_HOST (the tenant's domain), MNL_KEY (the API
key; default: the demo key seed_demo wrote to var/demo-api-keys/stuttgart.txt)."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

import requests


def session_for(tenant: str) -> tuple[requests.Session, str]:
    """A session with the key and the tenant's domain. *.localhost names do not resolve
    everywhere, so we connect to the server and name the tenant in the Host header; in
    production simply use https://<the tenant's domain>."""
    key = os.environ.get("MNL_KEY") or Path(f"var/demo-api-keys/{tenant}.txt").read_text().strip()
    session = requests.Session()
    session.headers.update(
        {"Authorization": f"Bearer {key}", "Host": os.environ.get("MNL_HOST", f"{tenant}.localhost:8000")}
    )
    return session, os.environ.get("MNL_API", "http://127.0.0.1:8000") + "/api/v1"


def raise_alarm(state: str, note: str) -> dict[str, Any]:
    session, api = session_for("stuttgart")
    found = session.get(f"{api}/channels/", params={"slug": "feinstaubalarm"}, timeout=10)
    found.raise_for_status()
    channel = found.json()["results"][0]
    # the Idempotency-Key makes a retry after a timeout safe: the alarm is raised once
    response = session.post(
        f"{api}/channels/{channel['id']}/alarm-state/",
        json={"state": state, "note": note},
        headers={"Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    if not response.ok:
        sys.exit(f"{response.status_code}: {response.json()['error']['message']}")
    return response.json()


if __name__ == "__main__":
    change = raise_alarm(sys.argv[1] if len(sys.argv) > 1 else "active", " ".join(sys.argv[2:]))
    print(f"{change['channel']['name']}: {change['from_state']} → {change['to_state']}")  # noqa: T201
