"""A broadcast sent end to end over the fake WhatsApp Cloud API, with committed data: the fake
pushes its signed status webhooks (with duplicates and reordering) to our endpoint on a live
server, statuses that overtake the send result wait and are applied, recipients outside the
24-hour window get the template, and the counters come out exact. Tasks run inline."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from accounts import roles
from broadcasts import services as broadcast_services
from broadcasts.models import Broadcast, Delivery
from broadcasts.selectors import broadcast_progress
from messengers import services
from messengers.models import Contact, WebhookEvent, WhatsAppTemplate
from tenants.models import Tenant
from tests.broadcasts.factories import make_subscribers
from tests.channels.factories import make_channel
from tests.conftest import LiveServer, in_tenant
from tests.factories import make_user
from tests.fakes.fixtures import WA_VERIFY_TOKEN
from tests.fakes.whatsapp import FakeWhatsApp, digits
from tests.messengers.support import forget_caches, whatsapp_connection


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> Iterator[None]:
    # as in tests/messengers: no route or adapter cached by an earlier (rolled back) test
    forget_caches()
    yield
    forget_caches()


def test_broadcast_over_whatsapp_with_status_webhooks_through_our_endpoint(
    committed_tenant: Callable[..., Tenant], live_server_multitenant: LiveServer, wa_fake: FakeWhatsApp
) -> None:
    webhook_url = live_server_multitenant.url("localhost", "/webhooks/whatsapp/")
    # statuses at once (they race the send result), duplicated and reordered like Meta's
    wa_fake.configure(webhook_url=webhook_url, speed=0, duplicate_rate=0.5, reorder_rate=0.5)
    tenant = committed_tenant()
    with in_tenant(tenant):
        conn = whatsapp_connection(api_base=wa_fake.url)
        # Meta's handshake reaches our endpoint through the live server
        assert wa_fake.handshake(WA_VERIFY_TOKEN, url=webhook_url)["ok"]
        assert wa_fake.handshake("wrong-token", url=webhook_url)["status"] == 403
        assert services.connection_sync_templates(connection=conn) == 8
        assert WhatsAppTemplate.objects.get(name="newsletter_update", language="de").is_usable

        channel = make_channel("Verkehr", ["VERKEHR"], connections=[conn])
        talking = make_subscribers(4, [channel], conn, last_inbound=True, prefix="+4917011")
        silent = make_subscribers(3, [channel], conn, last_inbound=False, prefix="+4917022")
        talking_addresses = set(Contact.objects.filter(subscriber__in=talking).values_list("address", flat=True))
        silent_addresses = set(Contact.objects.filter(subscriber__in=silent).values_list("address", flat=True))
        for address in talking_addresses:
            wa_fake.open_window(address)  # they wrote to us recently, at the provider too
        gone = sorted(talking_addresses)[0]
        wa_fake.fail_recipient(gone, "async_fail", code=131026)  # accepted, then "undeliverable"

        editor, approver = make_user(roles.EDITOR, username="e"), make_user(roles.APPROVER, username="a")
        broadcast = broadcast_services.broadcast_create(
            author=editor,
            title="Sperrung",
            channels=[channel],
            variants={"de": "Die Hauptstraße ist morgen von 8 bis 12 Uhr gesperrt."},
            wa_template_name="newsletter_update",
            wa_template_language="de",
            wa_template_params=["Stuttgart", "Sperrung Hauptstraße"],
        )
        broadcast_services.broadcast_submit(broadcast=broadcast, actor=editor)
        broadcast_services.broadcast_approve(broadcast=broadcast, actor=approver)  # sends inline
        broadcast.refresh_from_db()
        assert broadcast.status == Broadcast.Status.SENT
        deliveries = Delivery.objects.filter(broadcast=broadcast)
        assert deliveries.count() == 7
        assert all(d.provider_message_id.startswith("wamid.") for d in deliveries)

        # what reached the provider: templates outside the window, free text inside it
        sent = {digits(m["to"]): m for m in wa_fake.sent_messages()}
        assert set(sent) == {digits(a) for a in talking_addresses | silent_addresses}
        assert {sent[digits(a)]["type"] for a in silent_addresses} == {"template"}
        assert {sent[digits(a)]["type"] for a in talking_addresses} == {"text"}
        assert all(m["async_error"] in (None, 131026) for m in sent.values())
        template = sent[digits(sorted(silent_addresses)[0])]["body"]["template"]
        assert template["name"] == "newsletter_update" and template["language"]["code"] == "de"
        by_id = {d.provider_message_id: d for d in deliveries}
        assert set(by_id) == {m["id"] for m in sent.values()}

        # every status webhook the fake pushed was accepted by our endpoint
        assert wa_fake.wait_idle(60)
        webhooks = wa_fake.stats_summary()["webhooks"]
        assert webhooks["posts"] >= 6 * 3 + 1 and webhooks["non_2xx"] == 0 and webhooks["gave_up"] == 0
        # stored once each (duplicates were no-ops); whatever overtook its send result is applied now
        assert WebhookEvent.objects.filter(kind="status").count() == 6 * 3 + 1
        services.webhook_events_retry_deferred(connection_id=conn.pk)
        services.webhook_events_apply()
        assert set(WebhookEvent.objects.values_list("state", flat=True)) == {"applied"}

        final = {d.provider_message_id: d for d in Delivery.objects.filter(broadcast=broadcast)}
        gone_delivery = next(d for d in final.values() if d.contact.address == gone)  # type: ignore[union-attr]
        assert (gone_delivery.status, gone_delivery.error_code, gone_delivery.error_kind) == (
            "failed",
            "131026",
            "not_on_messenger",
        )
        assert Contact.objects.get(address=gone).status == Contact.Status.BLOCKED
        others = [d for d in final.values() if d.pk != gone_delivery.pk]
        assert {d.status for d in others} == {"read"}
        assert all(d.delivered_at is not None and d.read_at is not None for d in others)
        progress = broadcast_progress(broadcast)
        assert (progress.total, progress.read, progress.failed, progress.delivered, progress.sent) == (7, 6, 1, 0, 0)
        assert progress.failures_by_reason == {"not_on_messenger": 1}
