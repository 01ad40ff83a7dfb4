"""The tenant admin's start page: the "first steps" list above the app index."""

from __future__ import annotations

from analytics.views import FIRST_STEPS_PERMISSION, first_steps_dismiss
from core.admin_sites import AdminPage, tenant_site

tenant_site.index_template = "analytics/admin/index.html"
tenant_site.add_page(
    AdminPage(
        route="first-steps/dismiss/",
        view=first_steps_dismiss,
        name="first_steps_dismiss",
        permission=FIRST_STEPS_PERMISSION,
        context_flag="can_dismiss_first_steps",
    )
)
