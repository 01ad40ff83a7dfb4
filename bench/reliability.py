"""Helpers shared by the reliability scenarios (R1–R3)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from bench import harness


def db_retry(func: Any, *, attempts: int = 30) -> Any:
    """Run a query, reconnecting while the database restarts (R3)."""
    from django.db import InterfaceError, OperationalError, close_old_connections, connection

    for _ in range(attempts):
        try:
            return func()
        except (OperationalError, InterfaceError):
            close_old_connections()
            try:
                connection.close()
            except Exception:  # noqa: S110 - the connection is already broken
                pass
            time.sleep(1.0)
    return func()


def outcome_counts(broadcast_id: int) -> dict[str, int]:
    from django.db.models import Count

    from broadcasts.models import Delivery

    return dict(
        Delivery.objects.filter(broadcast_id=broadcast_id).values_list("status").annotate(n=Count("pk")).order_by()
    )


def fake_references(fake: harness.Fake) -> Counter[str]:
    """How often the fake accepted each of our deliveries (reference = "d<delivery id>")."""
    return Counter(str(record.get("reference", "")) for record in fake.sent() if record.get("reference"))


def setup_whatsapp(label: str, size: int, *, rate: float, fake_args: tuple[str, ...] = ()) -> tuple[Any, ...]:
    from core.tenancy import connection

    harness.drop_bench_tenants()
    fake = harness.whatsapp_fake(
        *fake_args,
        name=f"fake-wa-{label}",
    )
    fake.configure(sent_cap=size * 3)
    tenant = harness.fresh_tenant(label)
    connection.set_tenant(tenant)
    conn = harness.whatsapp_connection(fake, rate=rate)
    ch = harness.channel(label.upper(), [conn.pk])
    harness.bulk_subscribers(tenant, size, [ch.pk], conn.pk)
    return fake, tenant, conn, ch


def send_until_a_quarter(ch: Any, size: int, procs: list[harness.Proc], *, label: str) -> tuple[Any, harness.Proc]:
    """Start 4 workers and the dispatcher (appended to `procs`, so the caller stops them), approve
    a template broadcast to `ch` and return (broadcast, workers) once a quarter is sent."""
    from broadcasts.models import Delivery

    workers = harness.start_workers(4, name=f"worker-{label}")
    procs += [workers, harness.start_dispatcher()]
    time.sleep(3)
    broadcast = harness.approved_broadcast(ch, template=("hello_world", "en_US"))
    harness.wait_for(
        lambda: Delivery.objects.filter(broadcast=broadcast, status="sent").count() >= size // 4,
        timeout=120,
        interval=0.2,
        what="a quarter sent",
    )
    return broadcast, workers
