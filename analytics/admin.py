"""The admin start pages: the tenant's (first steps, what needs me, what is sending, what went
out, subscribers) and the operator's platform overview."""

from __future__ import annotations

from analytics import nav, views_broadcasts  # noqa: F401 - nav registers the entries
from analytics.views import (
    FIRST_STEPS_PERMISSION,
    START_SENDING_PERMISSION,
    first_steps_dismiss,
    start_sending_json,
)
from core.admin_sites import AdminPage, operator_site, tenant_site

tenant_site.index_template = "analytics/admin/index.html"
operator_site.index_template = "analytics/admin/operator_index.html"
tenant_site.add_page(
    AdminPage(
        route="first-steps/dismiss/",
        view=first_steps_dismiss,
        name="first_steps_dismiss",
        permission=FIRST_STEPS_PERMISSION,
        context_flag="can_dismiss_first_steps",
    )
)
tenant_site.add_page(
    AdminPage(
        route="start/sending.json",
        view=start_sending_json,
        name="start_sending",
        permission=START_SENDING_PERMISSION,
        context_flag="can_view_start_sending",
    )
)

tenant_site.add_page(
    AdminPage(
        route="analytics/broadcasts/",
        view=views_broadcasts.broadcast_results,
        name="analytics_broadcasts",
        permission=views_broadcasts.PERMISSION,
        context_flag="can_view_broadcast_results",
    )
)

from analytics import admin_inbox  # noqa: E402, F401 - the inbox figures page registers itself
