"""schemathesis against the live API (quality.md: fuzz the API parsers; zero 500s): every operation
of the OpenAPI schema with generated input, on a real threaded server, as a key with every scope
on a committed tenant. Each answer must be no server error and conform to the schema (status
code, content type, headers, body). Bounded: a few examples per operation (under two minutes)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from django.db import connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts import roles
from core.tenancy import connection
from tests.api.support import make_key
from tests.channels.factories import make_channel
from tests.factories import make_user

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live_api(django_db_setup: Any, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    """A committed tenant with a channel and a key, served by a threaded WSGI server."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    from tenants.models import Tenant
    from tests.conftest import _onboard

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    suffix = uuid.uuid4().hex[:8]
    with django_db_blocker.unblock():
        tenant = _onboard(f"s_{suffix}", f"s-{suffix}.localhost", "Stadt S")
        connection.set_tenant(tenant)
        make_channel("Feinstaubalarm", ["FEINSTAUB"], is_alarm=True)
        _, secret = make_key(user=make_user(roles.ADMIN), rate_limit=100_000)
        connection.set_schema_to_public()
        server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
        server.set_app(WSGIHandler())
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            session = requests.Session()
            session.headers.update({"Host": f"s-{suffix}.localhost", "Authorization": f"Bearer {secret}"})
            base_url = f"http://127.0.0.1:{server.server_address[1]}"
            yield {"base_url": base_url, "session": session}
        finally:
            server.shutdown()
            server.server_close()
            connections.close_all()
            with connection.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{tenant.schema_name}" CASCADE')
            Tenant.objects.filter(pk=tenant.pk).delete()


def _schema() -> Any:
    """The schema the server publishes at /api/v1/schema/ (generated in-process at collection; the
    same generator, so no server is needed to enumerate the operations)."""
    from drf_spectacular.generators import SchemaGenerator

    return json.loads(
        json.dumps(SchemaGenerator(urlconf="config.urls_tenant").get_schema(request=None, public=True), default=str)
    )


schema = schemathesis.openapi.from_dict(_schema())


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: Any, live_api: dict[str, Any]) -> None:
    case.call_and_validate(base_url=live_api["base_url"], session=live_api["session"], checks=CHECKS, timeout=30)
