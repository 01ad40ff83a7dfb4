"""Task functions used by the task tests (imported by dotted path in a real worker too)."""

from __future__ import annotations

import os

from accounts.services import audit_log
from core.tenancy import connection


def record_schema(marker: str) -> str:
    """Write down, inside whatever schema the worker put us in, which schema that was."""
    audit_log(
        action="test.probe",
        actor_label="worker",
        details={"marker": marker, "schema": connection.schema_name, "pid": os.getpid()},
    )
    return connection.schema_name
