"""Log plumbing: every record carries the tenant schema; optional one-JSON-object-per-line output;
secrets in URLs (Meta's hub.verify_token and the like) never reach a log line."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

# Query parameters whose values are secrets. Meta sends the WhatsApp verify token in the query
# string of its webhook handshake, and request lines (the development server's log) and request
# reprs (Django's warnings, dumped by the JSON formatter) carry the whole query.
SECRET_PARAMETERS = ("hub.verify_token", "verify_token", "access_token", "client_secret", "token", "secret", "password")


def _spelled_any_way(name: str) -> str:
    """A pattern for the name, also with "." and "_" percent-encoded."""
    return "".join({".": r"(?:\.|%2e)", "_": r"(?:_|%5f)"}.get(char, re.escape(char)) for char in name)


_SECRET_VALUE = re.compile(
    r"(?<![\w.%])((?:" + "|".join(_spelled_any_way(name) for name in SECRET_PARAMETERS) + r")=)[^&\s'\"<>\\]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with the value of every secret query parameter replaced by [redacted]."""
    return _SECRET_VALUE.sub(r"\1[redacted]", text) if "=" in text else text


class RedactingFormatter(logging.Formatter):
    """The plain text format, with secrets in URLs redacted from the whole line."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class TenantFilter(logging.Filter):
    """Like django_tenants.log.TenantContextFilter, but safe before the connection has a tenant."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "schema_name"):
            try:
                # not at the top: LOGGING is configured while the settings load, before the
                # database layer may be imported
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
            "message": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                # extras such as Django's `request` show the full path with its query string
                payload[key] = (
                    value
                    if isinstance(value, int | float | bool | None)
                    else redact(value if isinstance(value, str) else repr(value))
                )
        if record.exc_info:
            payload["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=False)
