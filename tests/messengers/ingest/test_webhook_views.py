"""Every test of test_webhook_views again, against the fast ingest path (messengers.ingest) on a
real socket instead of the Django views: signatures (403, nothing stored), malformed bodies
(400), routing (404), the handshake and other methods (passed on to Django), replays. The
server sees only committed data: `tenant` and `tenant_b` are committed tenants here
(tests.messengers.ingest_support)."""

from __future__ import annotations

from typing import Any

from tests.messengers.test_webhook_views import *  # noqa: F403  (collected again, here)


def test_this_module_runs_the_view_tests(request: Any) -> None:
    names = {item.name.split("[")[0] for item in request.session.items if item.module is request.module}
    assert {"test_whatsapp_unknown_number_or_route_is_404", "test_twilio_bad_signature_is_refused"} <= names
