"""A person's commands take effect in the order they sent them (R4), not in the order the provider
delivers them or our workers happen to apply them:

- events waiting together are applied in the provider's order (its timestamp, then arrival);
- two apply runs at once never apply a later command of a person before an earlier one;
- a command that arrives after a later one of the same person was already applied does not
  undo it for the channels the later one decided (an old START does not resubscribe after a
  STOP, an old STOP does not end what a later START asked for); other channels it names still
  follow it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection as django_connection
from django.test import override_settings

from messengers import services
from messengers.adapters.base import InboundMessage as InboundEvent
from messengers.models import Contact, InboundMessage, WebhookEvent
from subscribers.keywords import handle_inbound
from subscribers.models import ConsentEvent, Subscription
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.subscribers.factories import phone, replies

T0 = 1_749_416_000
_ids = itertools.count(1)


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


def event(contact: Contact, text: str, seconds: int, kind: str = "text") -> InboundEvent:
    return InboundEvent(
        provider_message_id=f"sbx-order-{next(_ids)}",
        sender=contact.address,
        at=at(seconds),
        kind=kind,  # type: ignore[arg-type]
        text=text,
    )


def store(contact: Contact, *events: InboundEvent) -> None:
    """The provider delivers these (in this order); nothing is applied yet."""
    services.webhook_events_store(connection=contact.connection, events=list(events))


def apply(capture: Any) -> None:
    with capture(execute=True):
        services.webhook_events_apply()


def receive(capture: Any, contact: Contact, text: str, seconds: int, kind: str = "text") -> None:
    store(contact, event(contact, text, seconds, kind))
    apply(capture)


def active(contact: Contact) -> set[str]:
    return set(
        Subscription.objects.filter(subscriber__contacts=contact, status=Subscription.Status.ACTIVE).values_list(
            "channel__slug", flat=True
        )
    )


def status(contact: Contact) -> str:
    contact.refresh_from_db()
    return contact.status


@pytest.fixture
def capture(django_capture_on_commit_callbacks: Any) -> Any:
    return django_capture_on_commit_callbacks


@pytest.fixture
def channels(tenant: Tenant) -> dict[str, Any]:
    return {"dust": make_channel("Feinstaubalarm", ["FEINSTAUB"]), "traffic": make_channel("Verkehr", ["VERKEHR"])}


# --------------------------------------------------------------------------------------------
# Waiting together: the provider's order
# --------------------------------------------------------------------------------------------
def test_commands_delivered_out_of_order_are_applied_in_the_order_sent(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    store(person, event(person, "STOP", 20), event(person, "START VERKEHR", 10))  # STOP arrives first
    apply(capture)
    assert active(person) == set() and status(person) == Contact.Status.UNSUBSCRIBED
    assert list(ConsentEvent.objects.order_by("pk").values_list("kind", flat=True)) == ["opt_in", "opt_out"]


def test_the_same_second_keeps_the_arrival_order(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    store(person, event(person, "START VERKEHR", 10), event(person, "STOP", 10))
    apply(capture)
    assert active(person) == set() and status(person) == Contact.Status.UNSUBSCRIBED


# --------------------------------------------------------------------------------------------
# Arriving after a later command was applied
# --------------------------------------------------------------------------------------------
def test_an_old_start_does_not_resubscribe_after_a_stop_of_everything(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    receive(capture, person, "START VERKEHR", 5)
    receive(capture, person, "STOP", 20)
    sent = len(replies(person))
    receive(capture, person, "START FEINSTAUB", 10)  # sent before the STOP, delivered after it
    assert active(person) == set() and status(person) == Contact.Status.UNSUBSCRIBED
    assert len(replies(person)) == sent  # no welcome for a subscription that did not happen
    late = InboundMessage.objects.filter(contact=person).get(sent_at=at(10))
    assert late.handled_by == "ignored" and "later" in late.handled_detail


def test_an_old_start_does_not_subscribe_after_a_stop_of_that_channel(channels: dict[str, Any], capture: Any) -> None:
    """The person changed their mind at once: START, then STOP. The STOP arrived first (when
    there was nothing to end); the START must not subscribe them afterwards."""
    person = phone()
    receive(capture, person, "STOP VERKEHR", 20)
    receive(capture, person, "START VERKEHR", 10)
    assert active(person) == set()
    assert not ConsentEvent.objects.filter(kind="opt_in").exists()


def test_an_old_start_still_subscribes_channels_no_later_command_named(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    receive(capture, person, "STOP FEINSTAUB", 20)
    receive(capture, person, "START", 10)  # every channel here: Feinstaubalarm was decided later
    assert active(person) == {"verkehr"} and status(person) == Contact.Status.ACTIVE
    assert "Verkehr" in replies(person)[-1]


def test_an_old_stop_does_not_end_what_a_later_start_asked_for(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    receive(capture, person, "START", 5)  # both channels
    receive(capture, person, "START VERKEHR", 30)  # already subscribed: nothing changes, but it counts
    receive(capture, person, "STOP", 20)  # sent between the two, delivered last
    assert active(person) == {"verkehr"}  # as if applied in order: STOP ended both, START VERKEHR came back
    assert status(person) == Contact.Status.ACTIVE  # the later START wants messages on this number


def test_an_old_stop_of_one_channel_after_a_later_start_of_it_changes_nothing(
    channels: dict[str, Any], capture: Any
) -> None:
    person = phone()
    receive(capture, person, "START VERKEHR", 30)
    receive(capture, person, "STOP VERKEHR", 20)
    assert active(person) == {"verkehr"}
    assert not ConsentEvent.objects.filter(kind="opt_out").exists()


def test_commands_that_change_nothing_about_consent_are_never_held_back(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    receive(capture, person, "HILFE", 20)
    receive(capture, person, "START VERKEHR", 10)  # older than the HILFE, but HILFE decided nothing
    assert active(person) == {"verkehr"}


def test_an_old_block_does_not_block_someone_who_wrote_to_us_later(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    receive(capture, person, "START VERKEHR", 30)
    receive(capture, person, "", 20, kind="block")  # they blocked, then unblocked and wrote START
    assert status(person) == Contact.Status.ACTIVE and active(person) == {"verkehr"}


# --------------------------------------------------------------------------------------------
# Two apply runs at once (threads with their own connections, committed data)
# --------------------------------------------------------------------------------------------
GATES: dict[str, tuple[threading.Event, threading.Event]] = {}


def gated_keywords(*, message: InboundMessage, event: InboundEvent) -> str | None:
    """The keyword handler, but a gated message waits inside its apply run until released."""
    gate = GATES.get(message.provider_message_id)
    if gate is not None:
        inside, release = gate
        inside.set()
        assert release.wait(timeout=60), "the other run never finished"
    return handle_inbound(message=message, event=event)


def test_overlapping_apply_runs_apply_a_persons_commands_in_order(committed_tenant: Callable[..., Tenant]) -> None:
    """Run A picks someone else's message and the person's START, and is still busy with the
    first when run B starts and finds the person's STOP ready. A goes on once B has finished
    (or is waiting for A)."""
    tenant = committed_tenant()
    errors: list[BaseException] = []
    with in_tenant(tenant), override_settings(MESSENGER_INBOUND_HANDLERS=[f"{__name__}.gated_keywords"]):
        make_channel("Verkehr", ["VERKEHR"])
        person, someone = phone(), phone()
        cache.set(services.APPLY_FLAG, 1, timeout=600)  # only the two runs below apply anything
        first = event(someone, "HILFE", 5)
        store(person, first, event(person, "START VERKEHR", 10), event(person, "STOP", 20))
        inside, release, b_done = threading.Event(), threading.Event(), threading.Event()
        GATES[first.provider_message_id] = (inside, release)

        def run(a: bool) -> None:
            try:
                django_connection.set_tenant(tenant)  # type: ignore[attr-defined]
                if a:
                    services.webhook_events_apply(batch_size=2)  # takes HILFE and START, waits in HILFE
                else:
                    assert inside.wait(timeout=60)
                    services.webhook_events_apply()  # meanwhile a second run: the STOP is ready
            except BaseException as exc:
                errors.append(exc)
                release.set()
            finally:
                if not a:
                    b_done.set()
                django_connection.close()

        threads = [threading.Thread(target=run, args=(a,)) for a in (True, False)]
        for thread in threads:
            thread.start()
        # let run A go on once run B has finished, or waits for A
        assert inside.wait(timeout=60)
        while not b_done.wait(timeout=0.05):
            with django_connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                if cursor.fetchone()[0]:
                    break
        release.set()
        for thread in threads:
            thread.join()
        GATES.clear()
        services.webhook_events_apply()
        cache.delete(services.APPLY_FLAG)
        assert not errors, errors
        assert set(WebhookEvent.objects.values_list("state", flat=True)) == {"applied"}
        assert active(person) == set() and status(person) == Contact.Status.UNSUBSCRIBED
        kinds = ConsentEvent.objects.filter(subscriber__contacts=person).order_by("pk").values_list("kind", flat=True)
        assert list(kinds) == ["opt_in", "opt_out"]
