"""The apps emit outgoing-webhook events from their services, in the transaction that made the
change: through the real pipeline (sandbox phone → keyword commands or inbox), the broadcast
workflow and alarm states. A rolled-back change emits nothing; tenant B's changes never reach
tenant A's endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection as db_connection
from django.db import transaction
from django.test.utils import CaptureQueriesContext

from accounts import roles
from broadcasts.services import broadcast_create, broadcast_submit
from channels.services import channel_set_alarm_state
from messengers import services as messenger_services
from messengers.models import Connection
from messengers.outgoing import services
from messengers.outgoing.models import EVENT_LABELS, WebhookDelivery, WebhookEndpoint
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.factories import make_user
from tests.messengers import outgoing_support
from tests.messengers.support import apply_all

pytestmark = pytest.mark.usefixtures("tenant")


@pytest.fixture
def names(settings: Any) -> Iterator[dict[str, list[str]]]:
    settings.NETGUARD_RESOLVER = "tests.messengers.outgoing_support.table_resolve"
    outgoing_support.NAMES.clear()
    outgoing_support.NAMES["crm.example.org"] = ["93.184.215.14"]
    yield outgoing_support.NAMES
    outgoing_support.NAMES.clear()


def make_endpoint(events: list[str] | None = None) -> WebhookEndpoint:
    admin = make_user(roles.ADMIN)
    endpoint, _ = services.webhook_endpoint_create(
        url="https://crm.example.org/hook", events=events or list(EVENT_LABELS), actor=admin
    )
    return endpoint


def events(event_type: str | None = None) -> list[dict[str, Any]]:
    rows = WebhookDelivery.objects.order_by("pk")
    if event_type:
        rows = rows.filter(event_type=event_type)
    return [row.payload for row in rows]


@pytest.fixture
def sandbox() -> Connection:
    return Connection.objects.get(provider="sandbox")


def test_inbound_replies_and_keyword_commands_become_events(names: Any, sandbox: Connection) -> None:
    make_endpoint()
    make_channel("Feinstaubalarm", ["FEINSTAUB"])
    anna = messenger_services.sandbox_person_create(connection=sandbox, name="Anna")
    messenger_services.sandbox_receive(connection=sandbox, address=anna.address, text="START FEINSTAUB")
    apply_all()
    anna.refresh_from_db()
    (opt_in,) = events("subscription.changed")
    assert opt_in["data"]["kind"] == "opt_in" and opt_in["data"]["channel"]["slug"] == "feinstaubalarm"
    assert opt_in["data"]["subscriber_id"] == anna.subscriber_id
    assert events("message.received") == [], "a keyword command is no reply for the inbox"

    messenger_services.sandbox_receive(connection=sandbox, address=anna.address, text="Gilt der Alarm morgen noch?")
    apply_all()
    (reply,) = events("message.received")
    data = reply["data"]
    assert data["message"]["text"] == "Gilt der Alarm morgen noch?"
    assert (data["subscriber_id"], data["contact_id"], data["connection"]["provider"]) == (
        anna.subscriber_id, anna.pk, "sandbox",
    )  # fmt: skip
    assert reply["type"] == "message.received" and reply["id"]

    messenger_services.sandbox_receive(connection=sandbox, address=anna.address, text="ALLE DATEN LÖSCHEN")
    apply_all()
    assert events("message.received") == [], "an erasure takes the webhook's copy of what the person wrote"
    kinds = [e["data"]["kind"] for e in events("subscription.changed")]
    assert kinds[0] == "opt_in" and kinds[-1] == "erasure"
    assert events("subscription.changed")[-1]["data"]["subscriber_id"] == anna.subscriber_id
    # the same event id for every endpoint, a new one for every event
    assert len({e["id"] for e in events()}) == len(events())


def test_broadcast_status_changes_become_events(names: Any) -> None:
    make_endpoint(["broadcast.status_changed"])
    channel = make_channel("Verkehr", ["VERKEHR"], requires_approval=True)
    editor = make_user(roles.EDITOR)
    broadcast = broadcast_create(author=editor, title="U3 Störung", variants={"de": "U3 gestört"}, channels=[channel])
    assert events() == []  # a new draft is no status change
    broadcast_submit(broadcast=broadcast, actor=editor)
    (event,) = events()
    assert event["data"] == {
        "broadcast": {"id": broadcast.pk, "title": "U3 Störung"},
        "from": "draft",
        "to": "submitted",
    }


def test_alarm_state_changes_become_events_only_for_endpoints_that_want_them(names: Any) -> None:
    wants = make_endpoint(["alarm.state_changed"])
    make_endpoint(["message.received"])
    channel = make_channel("Feinstaubalarm", ["FEINSTAUB"], is_alarm=True)
    channel_set_alarm_state(channel=channel, state="active", actor_label="sensor", note="PM10 > 50")
    rows = list(WebhookDelivery.objects.all())
    assert [r.endpoint_id for r in rows] == [wants.pk]
    data = rows[0].payload["data"]
    assert (data["channel"]["slug"], data["from"], data["to"], data["note"], data["changed_by"]) == (
        "feinstaubalarm", "inactive", "active", "PM10 > 50", "sensor",
    )  # fmt: skip


def test_a_rolled_back_change_emits_nothing(names: Any) -> None:
    make_endpoint(["alarm.state_changed"])
    channel = make_channel("Feinstaubalarm", ["FEINSTAUB"], is_alarm=True)
    with pytest.raises(RuntimeError), transaction.atomic():
        channel_set_alarm_state(channel=channel, state="active")
        assert WebhookDelivery.objects.count() == 1  # written in the same transaction …
        raise RuntimeError("the change fails after the event was written")
    assert WebhookDelivery.objects.count() == 0  # … so it went with the rollback
    channel_set_alarm_state(channel=channel, state="active")
    assert WebhookDelivery.objects.count() == 1


def test_switched_off_endpoints_get_no_events(names: Any) -> None:
    endpoint = make_endpoint(["alarm.state_changed"])
    admin = make_user(roles.ADMIN)
    services.webhook_endpoint_set_active(endpoint=endpoint, active=False, actor=admin)
    assert services.outgoing_event_emit(event_type="alarm.state_changed", data={}) == 0


def test_an_event_without_endpoints_costs_one_query() -> None:
    WebhookEndpoint.objects.exists()  # the connection's search path is set before we count
    with CaptureQueriesContext(db_connection) as queries:
        assert services.outgoing_event_emit(event_type="alarm.state_changed", data=lambda: {"unused": True}) == 0
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["SELECT"], queries.captured_queries


def test_tenant_b_changes_never_reach_tenant_a_endpoints(names: Any, tenant_b: Tenant) -> None:
    make_endpoint()
    with in_tenant(tenant_b):
        channel = make_channel("Luft B", ["LUFTB"], is_alarm=True)
        channel_set_alarm_state(channel=channel, state="active")
        assert WebhookDelivery.objects.count() == 0  # B has no endpoint, and A's are not in B's schema
    assert WebhookDelivery.objects.count() == 0
