"""End to end on the sandbox messenger, with committed data (the sender's database thread and
the sandbox adapter use their own connections, as in a real worker). Tasks run inline."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from accounts import roles
from broadcasts import services
from broadcasts.models import Broadcast, Delivery
from broadcasts.selectors import broadcast_progress
from messengers.models import SandboxMessage, WebhookEvent
from messengers.selectors import connection_sandbox
from tenants.models import Tenant
from tests.broadcasts.factories import make_subscribers
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.factories import make_user


def test_a_person_on_two_targeted_channels_gets_the_message_once_and_it_completes(
    committed_tenant: Callable[..., Tenant],
) -> None:
    tenant = committed_tenant()
    with in_tenant(tenant):
        sandbox = connection_sandbox()
        assert sandbox is not None
        dust = make_channel("Feinstaub", ["FEINSTAUB"], connections=[sandbox])
        traffic = make_channel("Verkehr", ["VERKEHR"], connections=[sandbox])
        both = make_subscribers(7, [dust, traffic], sandbox, prefix="+4915501")
        only_traffic = make_subscribers(3, [traffic], sandbox, prefix="+4915502")
        make_subscribers(4, [make_channel("Andere", ["ANDERE"], connections=[sandbox])], sandbox, prefix="+4915503")
        editor, approver = make_user(roles.EDITOR, username="e"), make_user(roles.APPROVER, username="a")
        broadcast = services.broadcast_create(
            author=editor,
            title="Test",
            channels=[dust, traffic],
            variants={"de": "Hallo https://example.org/info", "en": "Hello https://example.org/info"},
        )
        services.broadcast_submit(broadcast=broadcast, actor=editor)
        services.broadcast_approve(broadcast=broadcast, actor=approver)  # runs the send inline
        broadcast.refresh_from_db()
        assert broadcast.status == Broadcast.Status.SENT, (
            broadcast.status,
            list(Delivery.objects.filter(broadcast=broadcast).values_list("status", "error_detail")),
        )
        deliveries = Delivery.objects.filter(broadcast=broadcast)
        assert deliveries.count() == len(both) + len(only_traffic) == 10
        bubbles = Counter(SandboxMessage.objects.filter(direction="out").values_list("address", flat=True))
        assert len(bubbles) == 10 and set(bubbles.values()) == {1}
        # statuses from the (sandbox) webhook layer reach every delivery
        services_apply()
        progress = broadcast_progress(broadcast)
        assert progress.delivered == 10 and progress.failed == progress.skipped == 0, progress
        body = SandboxMessage.objects.filter(direction="out").first().text  # type: ignore[union-attr]
        assert "/l/" in body and "example.org" not in body  # links are tracked


def services_apply() -> dict[str, Any]:
    from messengers.services import webhook_events_apply

    WebhookEvent.objects.filter(state="deferred").update(applied_at=None)
    WebhookEvent.objects.filter(state="deferred").update(state="pending")
    return webhook_events_apply()
