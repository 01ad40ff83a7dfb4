"""Hochbahn's control centre reports a U3 disruption: create the broadcast and submit it for
approval (the press office approves it in the admin; docs/api.md).

Against `make run`: python docs/examples/u3_disruption.py
Settings as in feinstaubalarm.py (default key: var/demo-api-keys/hochbahn.txt)."""

from __future__ import annotations

import sys
import uuid
from typing import Any

from feinstaubalarm import session_for

TEXT = "U3: Störung zwischen Barmbek und Kellinghusenstraße. Bitte weichen Sie auf die U1 aus."


def report_disruption() -> dict[str, Any]:
    session, api = session_for("hochbahn")
    found = session.get(f"{api}/channels/", params={"slug": "u3"}, timeout=10)
    found.raise_for_status()
    u3 = found.json()["results"][0]
    created = session.post(
        f"{api}/broadcasts/create/",
        json={"title": "U3 Störung Barmbek–Kellinghusenstraße", "texts": {"de": TEXT}, "channels": [u3["id"]]},
        headers={"Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    if not created.ok:
        sys.exit(f"{created.status_code}: {created.json()['error']['message']}")
    submitted = session.post(f"{api}/broadcasts/{created.json()['id']}/submit/", timeout=10)
    if not submitted.ok:
        sys.exit(f"{submitted.status_code}: {submitted.json()['error']['message']}")
    return submitted.json()


if __name__ == "__main__":
    broadcast = report_disruption()
    print(f"broadcast {broadcast['id']}: {broadcast['status']}")  # noqa: T201
