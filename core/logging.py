"""Log plumbing: every record carries the tenant schema; optional one-JSON-object-per-line output."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class TenantFilter(logging.Filter):
    """Like django_tenants.log.TenantContextFilter, but safe before the connection has a tenant."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "schema_name"):
            try:
                from django.db import connection

                record.schema_name = getattr(connection, "schema_name", "public")
            except Exception:  # settings not configured yet
                record.schema_name = "-"
        return True


_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "schema_name"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "at": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "tenant": getattr(record, "schema_name", "-"),
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                payload[key] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)
