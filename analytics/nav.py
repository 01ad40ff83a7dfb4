"""The analytics entries in the tenant admin's navigation (imported by analytics/admin.py)."""

from __future__ import annotations

from django.utils.translation import pgettext_lazy

from analytics.views_broadcasts import PERMISSION as BROADCAST_RESULTS_PERMISSION
from core.admin_sites import NavEntry, tenant_site

tenant_site.add_nav(
    NavEntry(
        key="broadcast_results",
        label=pgettext_lazy("admin navigation", "Broadcast results"),
        url="analytics_broadcasts",
        permissions=(BROADCAST_RESULTS_PERMISSION,),
        icon="chart",
        order=15,
    )
)
