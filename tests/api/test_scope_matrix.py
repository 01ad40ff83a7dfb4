"""Every scope against every endpoint: a key holding only scope X gets 403 from every endpoint
that needs another scope, and gets past the scope check (no 401/403) where X is the one needed."""

from __future__ import annotations

import pytest

from accounts import roles
from tenants.models import Tenant
from tests.api.support import ALL_SCOPES, api_client, make_key
from tests.channels.factories import make_channel
from tests.factories import make_user
from tests.helpers import enrol_totp

pytestmark = pytest.mark.django_db

# (method, path, the scope it needs); {c} channel, {b} broadcast, {s} subscriber, {v} conversation
ENDPOINTS = [
    ("get", "/api/v1/channels/", "channels:read"),
    ("get", "/api/v1/channels/{c}/", "channels:read"),
    ("post", "/api/v1/channels/{c}/alarm-state/", "channels:write"),
    ("post", "/api/v1/subscribers/create/", "subscribers:write"),
    ("get", "/api/v1/subscribers/lookup/?address=%2B491701234567", "subscribers:read"),
    ("post", "/api/v1/subscribers/{s}/erase/", "subscribers:write"),
    ("post", "/api/v1/subscribers/imports/", "subscribers:write"),
    ("get", "/api/v1/subscribers/imports/1/", "subscribers:write"),
    ("get", "/api/v1/broadcasts/", "broadcasts:read"),
    ("post", "/api/v1/broadcasts/create/", "broadcasts:write"),
    ("get", "/api/v1/broadcasts/{b}/", "broadcasts:read"),
    ("patch", "/api/v1/broadcasts/{b}/update/", "broadcasts:write"),
    ("post", "/api/v1/broadcasts/{b}/submit/", "broadcasts:write"),
    ("post", "/api/v1/broadcasts/{b}/approve/", "broadcasts:approve"),
    ("post", "/api/v1/broadcasts/{b}/reject/", "broadcasts:approve"),
    ("post", "/api/v1/broadcasts/{b}/schedule/", "broadcasts:write"),
    ("post", "/api/v1/broadcasts/{b}/pause/", "broadcasts:write"),
    ("post", "/api/v1/broadcasts/{b}/resume/", "broadcasts:write"),
    ("post", "/api/v1/broadcasts/{b}/cancel/", "broadcasts:write"),
    ("get", "/api/v1/broadcasts/{b}/send-plan/", "broadcasts:read"),
    ("get", "/api/v1/broadcasts/{b}/progress/", "broadcasts:read"),
    ("get", "/api/v1/broadcasts/{b}/stats/", "analytics:read"),
    ("get", "/api/v1/analytics/headline/", "analytics:read"),
    ("get", "/api/v1/inbox/conversations/", "inbox:read"),
    ("get", "/api/v1/inbox/conversations/{v}/", "inbox:read"),
    ("post", "/api/v1/inbox/conversations/{v}/reply/", "inbox:write"),
    ("post", "/api/v1/inbox/conversations/{v}/assign/", "inbox:write"),
    ("post", "/api/v1/inbox/conversations/{v}/close/", "inbox:write"),
]


def test_the_matrix_covers_every_operation_of_the_schema() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator(urlconf="config.urls_tenant").get_schema(request=None, public=True)
    documented = {(method, path) for path, item in schema["paths"].items() for method in item}
    listed = {(method, path.split("?")[0]) for method, path, _ in ENDPOINTS}
    normalised = {
        (m, p.replace("{c}", "{channel_id}").replace("{b}", "{broadcast_id}").replace("{s}", "{subscriber_id}")
         .replace("{v}", "{conversation_id}").replace("/imports/1/", "/imports/{import_id}/"))
        for m, p in listed
    }  # fmt: skip
    assert normalised == documented


@pytest.mark.parametrize("scope", ALL_SCOPES)
def test_each_scope_opens_exactly_its_endpoints(tenant: Tenant, scope: str) -> None:
    from inbox.models import Conversation
    from messengers import services as messenger_services
    from messengers.models import Connection
    from tests.messengers.support import apply_all

    channel = make_channel(is_alarm=True)
    author = make_user(roles.EDITOR)
    from broadcasts.services import composing

    broadcast = composing.broadcast_create(author=author, title="t", variants={"de": "x"}, channels=[channel])
    sandbox = Connection.objects.get(provider="sandbox")
    person = messenger_services.sandbox_person_create(connection=sandbox, name="Anna")
    messenger_services.sandbox_receive(connection=sandbox, address=person.address, text="Frage")
    apply_all()
    conversation = Conversation.objects.get(contact=person)
    ids = {"c": channel.pk, "b": broadcast.pk, "s": 999999, "v": conversation.pk}
    admin = make_user(roles.ADMIN)
    enrol_totp(admin)
    _, secret = make_key([scope], user=admin)
    client = api_client(secret)
    for method, path, needed in ENDPOINTS:
        url = path.format(**ids)
        response = getattr(client, method)(url, {}, content_type="application/json")
        denied = response.status_code in (401, 403)
        assert denied != (needed == scope), (method, url, response.status_code, response.content)
        assert response.status_code < 500
