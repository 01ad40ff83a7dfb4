"""Prometheus figures about tenants (registered on core.metrics.REGISTRY by TenantsConfig.ready):
tenants by status, read from the public schema at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from django_tenants.utils import get_public_schema_name, schema_context
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tenants.models import Tenant


class TenantCollector(Collector):
    def describe(self) -> list[Metric]:
        # registering must not touch the database (it may not be migrated yet)
        return []

    def collect(self) -> Iterator[Metric]:
        with schema_context(get_public_schema_name()):
            tenants = GaugeMetricFamily("mnl_tenants", "Tenants by status", labels=["status"])
            counts = {s: 0 for s in Tenant.Status.values}
            for row in Tenant.objects.exclude(schema_name="public").values_list("status", flat=True):
                counts[row] += 1
            for status, count in counts.items():
                tenants.add_metric([status], count)
            yield tenants
