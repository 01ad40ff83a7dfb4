"""The inbox figures page and its navigation entry (imported by analytics/admin.py)."""

from __future__ import annotations

from django.utils.translation import pgettext_lazy

from analytics.selectors_inbox import PERMISSION
from analytics.views_inbox import inbox_figures_page
from core.admin_sites import AdminPage, NavEntry, tenant_site

tenant_site.add_page(
    AdminPage(
        route="analytics/inbox/",
        view=inbox_figures_page,
        name="analytics_inbox",
        permission=PERMISSION,
        context_flag="can_view_inbox_figures",
    )
)
tenant_site.add_nav(
    NavEntry(
        key="inbox_figures",
        label=pgettext_lazy("admin navigation", "Inbox figures"),
        url="analytics_inbox",
        permissions=(PERMISSION,),
        icon="chart",
        order=45,
    )
)
