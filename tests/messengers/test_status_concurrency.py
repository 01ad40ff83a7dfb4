"""R4 under real concurrency: status events of the same messages, every one stored three times in
a shuffled order, are applied by several workers at once (threads, each with its own database
connection, on committed data). Whatever interleaving happens, the rows end exactly as scripted:
the status is the highest by rank (`read` is never lost or downgraded), delivered/read times are
the earliest reported, the first error is kept, the broadcast's counters are exact, and a
contact is unreachable exactly when its message's final state is a failure saying so."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.core.cache import cache
from django.db import connection as django_connection
from django.utils import timezone

from broadcasts.models import Broadcast, Delivery
from broadcasts.selectors import broadcast_progress
from messengers import services
from messengers.adapters.base import ErrorKind, StatusEvent
from messengers.models import Connection, Contact, OutboundMessage, WebhookEvent
from messengers.selectors import connection_sandbox
from tenants.models import Tenant
from tests.broadcasts.factories import make_subscribers
from tests.channels.factories import make_channel
from tests.conftest import in_tenant

WORKERS = 4
DELIVERY_COPIES = 40  # messages per scripted case
SINGLE_COPIES = 15
T0 = 1_749_416_000
KINDS = {
    "131026": ErrorKind.NOT_ON_MESSENGER,
    "131047": ErrorKind.WINDOW_CLOSED,
    "131000": ErrorKind.TEMPORARY,
    "131049": ErrorKind.BAD_REQUEST,
}

# What the provider says about each message: (status, seconds after T0, error code).
SCRIPT: dict[str, list[tuple[str, int, str]]] = {
    "read": [("sent", 1, ""), ("delivered", 5, ""), ("read", 9, "")],
    "delivered": [("sent", 1, ""), ("delivered", 6, "")],
    "read-only": [("read", 7, "")],
    "failed": [("sent", 1, ""), ("failed", 3, "131026")],  # not on WhatsApp: unreachable
    "window": [("failed", 3, "131047"), ("delivered", 8, "")],  # multi-device: delivered wins, error kept
    "unreachable-then-delivered": [("sent", 1, ""), ("failed", 3, "131026"), ("delivered", 8, "")],
    "read-then-failed": [("sent", 1, ""), ("read", 4, ""), ("failed", 5, "131000")],
    "declined": [("failed", 2, "131049")],
}
# (status, error code, delivered_at, read_at)
EXPECTED: dict[str, tuple[str, str, int | None, int | None]] = {
    "read": ("read", "", 5, 9),
    "delivered": ("delivered", "", 6, None),
    "read-only": ("read", "", 7, 7),
    "failed": ("failed", "131026", None, None),
    "window": ("delivered", "131047", 8, None),
    "unreachable-then-delivered": ("delivered", "131026", 8, None),
    "read-then-failed": ("read", "131000", 4, 4),
    "declined": ("failed", "131049", None, None),
}
UNREACHABLE = {"failed"}  # whose contact ends blocked; a later delivery makes it reachable again


def at(offset: int | None) -> datetime | None:
    return None if offset is None else datetime.fromtimestamp(T0 + offset, UTC)


def wamid(prefix: str, name: str, copy: int) -> str:
    return f"wamid.{prefix}{name}.{copy}"


def status_events(prefix: str, copies: int) -> list[StatusEvent]:
    events = []
    for copy in range(copies):
        for name, script in SCRIPT.items():
            for status, offset, code in script:
                events.append(
                    StatusEvent(
                        provider_message_id=wamid(prefix, name, copy),
                        status=status,  # type: ignore[arg-type]
                        at=at(offset),  # type: ignore[arg-type]
                        error_code=code,
                        error_title=f"error {code}" if code else "",
                        error_kind=KINDS.get(code),
                    )
                )
    return events


def run_workers(tenant: Tenant, work: Callable[[int], None], count: int = WORKERS) -> None:
    """`work(i)` in `count` threads at once, each with its own database connection in the tenant."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def main(i: int) -> None:
        try:
            django_connection.set_tenant(tenant)  # type: ignore[attr-defined]
            barrier.wait()
            work(i)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)
        finally:
            django_connection.close()

    threads = [threading.Thread(target=main, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def store_and_apply_concurrently(tenant: Tenant, conn: Connection, events: list[StatusEvent], seed: int) -> None:
    """Every event three times, shuffled and dealt to the workers; each stores its share in small
    POST-sized pieces and applies small batches in between, all at the same time."""
    # the workers apply by themselves; no inline apply task is queued by the stores
    cache.set(services.APPLY_FLAG, 1, timeout=600)
    everything = events * 3
    random.Random(seed).shuffle(everything)
    shares = [everything[i::WORKERS] for i in range(WORKERS)]

    def work(i: int) -> None:
        rng = random.Random(seed * 100 + i)
        share = shares[i]
        while share:
            size = rng.choice([1, 1, 2, 3, 10])
            piece, share = share[:size], share[size:]
            services.webhook_events_store(connection=conn, events=piece)
            if rng.random() < 0.7:
                services.webhook_events_apply(batch_size=rng.randint(1, 8))
        while services.webhook_events_apply(batch_size=rng.randint(1, 8))["picked"]:
            pass

    run_workers(tenant, work)
    # anything a deadlock victim had to give back is due again at once (as its retry would be)
    WebhookEvent.objects.exclude(state=WebhookEvent.State.APPLIED).update(applied_at=timezone.now())
    services.webhook_events_apply()
    cache.delete(services.APPLY_FLAG)
    assert not WebhookEvent.objects.exclude(state=WebhookEvent.State.APPLIED).exists()
    assert WebhookEvent.objects.count() == len(events)  # the replays were no-ops


def make_deliveries(conn: Connection, names: list[tuple[str, int]]) -> Broadcast:
    channel = make_channel("Status", [], connections=[conn])
    people = make_subscribers(len(names), [channel], conn, prefix="+4915577")
    broadcast = Broadcast.objects.create(title="Statuses", status=Broadcast.Status.SENT)
    contacts = dict(Contact.objects.filter(subscriber__in=people).values_list("subscriber_id", "pk"))
    Delivery.objects.bulk_create(
        [
            Delivery(
                broadcast=broadcast,
                subscriber=person,
                contact_id=contacts[person.pk],
                connection=conn,
                language="de",
                status=Delivery.Status.SENT,
                provider_message_id=wamid("d-", name, copy),
                next_attempt_at=timezone.now(),
                sent_at=at(0),
            )
            for (name, copy), person in zip(names, people, strict=True)
        ]
    )
    return broadcast


def make_single_messages(conn: Connection, names: list[tuple[str, int]]) -> None:
    Contact.objects.bulk_create([Contact(connection=conn, address=f"+4915588{i:05d}") for i in range(len(names))])
    contacts = list(Contact.objects.filter(address__startswith="+4915588").order_by("address"))
    OutboundMessage.objects.bulk_create(
        [
            OutboundMessage(
                connection=conn,
                contact=contact,
                to=contact.address,
                text=name,
                status=OutboundMessage.Status.SENT,
                provider_message_id=wamid("o-", name, copy),
                sent_at=at(0),
            )
            for (name, copy), contact in zip(names, contacts, strict=True)
        ]
    )


def differences(rows: dict[str, Any], prefix: str, names: list[tuple[str, int]]) -> dict[tuple[Any, ...], Any]:
    wrong: dict[tuple[Any, ...], Any] = {}
    for name, copy in names:
        row = rows[wamid(prefix, name, copy)]
        status, code, delivered, read = EXPECTED[name]
        got = (row.status, row.error_code, row.delivered_at, row.read_at)
        if got != (status, code, at(delivered), at(read)):
            wrong[(prefix, name, copy)] = got
        assert row.contact is not None
        if (row.contact.status == Contact.Status.BLOCKED) != (name in UNREACHABLE):
            wrong[(prefix, name, copy, "contact")] = row.contact.status
    return wrong


def test_statuses_end_exactly_as_scripted_when_several_workers_apply_them_at_once(
    committed_tenant: Callable[..., Tenant],
) -> None:
    """Both sinks at once: broadcast deliveries and single messages on one connection."""
    tenant = committed_tenant()
    with in_tenant(tenant):
        conn = connection_sandbox()
        assert conn is not None
        deliveries = [(name, copy) for copy in range(DELIVERY_COPIES) for name in SCRIPT]
        singles = [(name, copy) for copy in range(SINGLE_COPIES) for name in SCRIPT]
        broadcast = make_deliveries(conn, deliveries)
        make_single_messages(conn, singles)
        events = status_events("d-", DELIVERY_COPIES) + status_events("o-", SINGLE_COPIES)

        store_and_apply_concurrently(tenant, conn, events, seed=1)

        rows: dict[str, Any] = {
            row.provider_message_id: row
            for row in Delivery.objects.filter(broadcast=broadcast).select_related("contact")
        }
        rows.update({row.provider_message_id: row for row in OutboundMessage.objects.select_related("contact")})
        wrong = differences(rows, "d-", deliveries) | differences(rows, "o-", singles)
        assert not wrong, f"{len(wrong)} rows differ from the script, e.g. {list(wrong.items())[:6]}"
        kinds = Delivery.objects.filter(broadcast=broadcast, error_code="131026").values_list("error_kind", flat=True)
        assert set(kinds) == {"not_on_messenger"}
        counts = dict.fromkeys(("sent", "delivered", "read", "failed"), 0)
        for name, _ in deliveries:
            counts[EXPECTED[name][0]] += 1
        progress = broadcast_progress(broadcast)
        assert (progress.total, progress.sent, progress.delivered, progress.read, progress.failed) == (
            len(deliveries), counts["sent"], counts["delivered"], counts["read"], counts["failed"],
        )  # fmt: skip


def test_the_apply_flag_outlives_any_apply_run() -> None:
    """Two runs overlap only if the flag that keeps a second one from being queued expires while
    the first still works: it must outlast the run's whole time budget."""
    import inspect

    budget = inspect.signature(services.webhook_events_apply).parameters["time_budget"].default
    assert budget == services.APPLY_TIME_BUDGET
    assert services.APPLY_LOCK_SECONDS > services.APPLY_TIME_BUDGET
