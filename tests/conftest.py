"""Test fixtures.

Layout of the test database: the public schema (migrated by pytest-django's set-up, which runs
django-tenants' migrate), the template schema, and two tenants created once per session,
`tenant_a` and `tenant_b`, through the real onboarding service. Ordinary tests run inside a
transaction that is rolled back (pytest-django's `db`), with the connection set to tenant A
by the `tenant` fixture. Tests that need committed data (a real worker process, a browser
against a live server) use `committed_tenant`, which onboards a fresh tenant and drops it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.test import Client

from core.tenancy import connection
from tenants.models import Tenant

TENANT_A = ("test_a", "tenant-a.localhost", "Stadt A")
TENANT_B = ("test_b", "tenant-b.localhost", "Stadt B")


def _onboard(schema: str, domain: str, name: str) -> Tenant:
    from tenants.services import tenant_onboard

    connection.set_schema_to_public()
    return tenant_onboard(
        schema_name=schema, name=name, domain=domain, admin_email=f"admin@{schema.replace('_', '-')}.example"
    ).tenant


@pytest.fixture(scope="session")
def django_db_setup(
    request: pytest.FixtureRequest, django_test_environment: Any, django_db_blocker: Any, django_db_keepdb: bool
) -> Iterator[None]:
    """Always create the test database (pytest-django only does when a collected test uses `db`;
    a session of committed-data tests would otherwise write into the real database)."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(
            verbosity=request.config.option.verbose,
            interactive=False,
            keepdb=django_db_keepdb,
            aliases={"default"},  # type: ignore[arg-type]  # Django accepts any collection of aliases
            serialized_aliases=set(),
        )
        call_command("platform_setup", verbosity=0)
        if not Tenant.objects.filter(schema_name=TENANT_A[0]).exists():
            _onboard(*TENANT_A)
            _onboard(*TENANT_B)
    yield
    if not django_db_keepdb:
        with django_db_blocker.unblock():
            # sender threads and live servers may leave idle connections behind
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            teardown_databases(config, verbosity=request.config.option.verbose)


@pytest.fixture(autouse=True)
def _fresh_tenant_routing() -> Iterator[None]:
    """Each test starts with an empty host → tenant cache (CachedTenantMiddleware keeps tenants
    for a few seconds per process; a rolled-back change must not leak into the next test)."""
    from core.middleware import CachedTenantMiddleware

    CachedTenantMiddleware._cache.clear()
    yield
    CachedTenantMiddleware._cache.clear()


@pytest.fixture(scope="session")
def tenant_a(django_db_setup: Any, django_db_blocker: Any) -> Tenant:
    with django_db_blocker.unblock():
        return Tenant.objects.get(schema_name=TENANT_A[0])


@pytest.fixture(scope="session")
def tenant_b(django_db_setup: Any, django_db_blocker: Any) -> Tenant:
    with django_db_blocker.unblock():
        return Tenant.objects.get(schema_name=TENANT_B[0])


@pytest.fixture
def tenant(db: Any, tenant_a: Tenant) -> Iterator[Tenant]:
    """Run the test inside tenant A's schema (inside the test transaction)."""
    tenant_a.refresh_from_db()
    connection.set_tenant(tenant_a)
    yield tenant_a
    connection.set_schema_to_public()


@pytest.fixture
def public(db: Any) -> Iterator[None]:
    connection.set_schema_to_public()
    yield
    connection.set_schema_to_public()


@contextmanager
def in_tenant(tenant: Tenant) -> Iterator[Tenant]:
    previous = connection.tenant
    connection.set_tenant(tenant)
    try:
        yield tenant
    finally:
        connection.set_tenant(previous)


# Test clients ask for English pages (the default for staff is German, tested separately), so
# assertions on texts do not depend on the German catalogue.


@pytest.fixture
def client_a(tenant_a: Tenant) -> Client:
    return Client(HTTP_HOST=TENANT_A[1], HTTP_ACCEPT_LANGUAGE="en")


@pytest.fixture
def client_b(tenant_b: Tenant) -> Client:
    return Client(HTTP_HOST=TENANT_B[1], HTTP_ACCEPT_LANGUAGE="en")


@pytest.fixture
def client_public() -> Client:
    return Client(HTTP_HOST="localhost", HTTP_ACCEPT_LANGUAGE="en")


def drop_tenants(tenants: Iterable[Tenant]) -> None:
    """Drop committed tenants: their schemas, then their rows in public."""
    connection.set_schema_to_public()
    for tenant in tenants:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{tenant.schema_name}" CASCADE')
        Tenant.objects.filter(pk=tenant.pk).delete()


@pytest.fixture
def committed_tenant(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Callable[..., Tenant]]:
    """Factory of fresh tenants whose data is committed; each is dropped after the test."""
    created: list[Tenant] = []

    def make(name: str = "Stadt C") -> Tenant:
        suffix = uuid.uuid4().hex[:8]
        tenant = _onboard(f"c_{suffix}", f"c-{suffix}.localhost", name)
        created.append(tenant)
        return tenant

    with django_db_blocker.unblock():
        try:
            yield make
        finally:
            drop_tenants(created)


class LiveServer:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def url(self, domain: str, path: str = "/") -> str:
        return f"http://{domain}:{self.port}{path}"


@pytest.fixture
def live_server_multitenant(django_db_setup: Any, django_db_blocker: Any) -> Iterator[LiveServer]:
    """A real threaded WSGI server (static files included) on a free port, serving every tenant
    domain (*.localhost resolves to loopback in Chromium). Data the test wants the server to see
    must be committed: use it with `committed_tenant`."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    with django_db_blocker.unblock():
        server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
        server.set_app(StaticFilesHandler(WSGIHandler()))
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield LiveServer("127.0.0.1", server.server_address[1])
        finally:
            server.shutdown()
            server.server_close()
            connections.close_all()
