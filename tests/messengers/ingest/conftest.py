"""Tests against the fast ingest path on a real socket (tests.messengers.ingest_support): the
server sees only committed data, so `tenant` and `tenant_b` are committed tenants here, and
`client_public` posts to the server instead of calling the Django views."""

from tests.messengers.ingest_support import _committed_pair, client_public, tenant, tenant_b  # noqa: F401
