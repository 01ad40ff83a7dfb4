"""Prometheus metrics.

Request counters and latencies are per process (each gunicorn worker reports its own; scrape
each, or sum in Prometheus). Platform figures are read from the database at scrape time, so
every process reports the same: queue depth and failed tasks here, tenants and their roll-ups
from the collectors those apps register on REGISTRY when they load (core names no app).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.utils import timezone
from django_q.models import Failure, OrmQ
from django_tenants.utils import get_public_schema_name, schema_context
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


class QueueCollector(Collector):
    """The task queue's figures; apps register collectors of their own on REGISTRY (tenants does)."""

    def describe(self) -> list[Metric]:
        # registering must not touch the database (it may not be migrated yet)
        return []

    def collect(self) -> Iterator[Metric]:
        with schema_context(get_public_schema_name()):
            queue = GaugeMetricFamily("mnl_queue_tasks", "Tasks waiting in the ORM broker queue")
            queue.add_metric([], OrmQ.objects.count())
            yield queue

            failed = GaugeMetricFamily("mnl_tasks_failed_last_hour", "Background tasks failed in the last hour")
            failed.add_metric([], Failure.objects.filter(stopped__gte=timezone.now() - timedelta(hours=1)).count())
            yield failed


REGISTRY.register(QueueCollector())


def render() -> bytes:
    return generate_latest(REGISTRY)
