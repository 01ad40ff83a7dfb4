"""Prometheus metrics.

Request counters and latencies are per process (each gunicorn worker reports its own; scrape
each, or sum in Prometheus). Platform figures (tenants, queue depth, failed tasks, per-tenant
roll-ups) are read from the database at scrape time, so every process reports the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "mnl_http_requests_total", "HTTP requests handled by this process", ["view", "status"], registry=REGISTRY
)
LATENCY = Histogram(
    "mnl_http_request_seconds",
    "Request duration in this process",
    ["view"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def observe_request(*, view: str, status: int, seconds: float) -> None:
    REQUESTS.labels(view=view, status=str(status)).inc()
    LATENCY.labels(view=view).observe(seconds)


class PlatformCollector(Collector):
    def describe(self) -> list[Metric]:
        # registering must not touch the database (it may not be migrated yet)
        return []

    def collect(self) -> Iterator[Metric]:
        from django_q.models import Failure, OrmQ
        from django_tenants.utils import get_public_schema_name, schema_context

        from tenants.models import Tenant, TenantRollup

        with schema_context(get_public_schema_name()):
            tenants = GaugeMetricFamily("mnl_tenants", "Tenants by status", labels=["status"])
            counts = {s: 0 for s in Tenant.Status.values}
            for row in Tenant.objects.exclude(schema_name="public").values_list("status", flat=True):
                counts[row] += 1
            for status, count in counts.items():
                tenants.add_metric([status], count)
            yield tenants

            queue = GaugeMetricFamily("mnl_queue_tasks", "Tasks waiting in the ORM broker queue")
            queue.add_metric([], OrmQ.objects.count())
            yield queue

            failed = GaugeMetricFamily("mnl_tasks_failed_last_hour", "Background tasks failed in the last hour")
            failed.add_metric([], Failure.objects.filter(stopped__gte=timezone.now() - timedelta(hours=1)).count())
            yield failed

            families: dict[str, GaugeMetricFamily] = {}
            for rollup in TenantRollup.objects.select_related("tenant"):
                for key, value in rollup.metrics.items():
                    if not isinstance(value, int | float):
                        continue
                    family = families.setdefault(
                        key, GaugeMetricFamily(f"mnl_tenant_{key}", f"Per-tenant roll-up: {key}", labels=["tenant"])
                    )
                    family.add_metric([rollup.tenant.schema_name], value)
            yield from families.values()


REGISTRY.register(PlatformCollector())


def render() -> bytes:
    return generate_latest(REGISTRY)
