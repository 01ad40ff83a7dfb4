"""Prometheus figures from the roll-ups (registered on core.metrics.REGISTRY by AnalyticsConfig):
one gauge per numeric figure, labelled by tenant, read from the public schema at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from django_tenants.utils import get_public_schema_name, schema_context
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from analytics.models import TenantRollup


class RollupCollector(Collector):
    def describe(self) -> list[Metric]:
        # registering must not touch the database (it may not be migrated yet)
        return []

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily] = {}
        with schema_context(get_public_schema_name()):
            for rollup in TenantRollup.objects.select_related("tenant"):
                for key, value in rollup.metrics.items():
                    if not isinstance(value, int | float):
                        continue
                    family = families.setdefault(
                        key, GaugeMetricFamily(f"mnl_tenant_{key}", f"Per-tenant roll-up: {key}", labels=["tenant"])
                    )
                    family.add_metric([rollup.tenant.schema_name], value)
        yield from families.values()
