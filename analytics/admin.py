"""The admin start pages: the tenant's (first steps, what needs me, what is sending, what went
out, subscribers) and the operator's platform overview."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from analytics.views import (
    FIRST_STEPS_PERMISSION,
    START_SENDING_PERMISSION,
    first_steps_dismiss,
    start_sending_json,
)
from analytics.views_channels import CHANNEL_FIGURES_PERMISSION, channel_figures, channel_figures_one
from core.admin_sites import AdminPage, NavEntry, operator_site, tenant_site

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

# Channel figures: every channel over a period, and one channel's page (linked from its admin page).
tenant_site.add_page(
    AdminPage(
        route="analytics/channels/",
        view=channel_figures,
        name="analytics_channels",
        permission=CHANNEL_FIGURES_PERMISSION,
        context_flag="can_view_channel_figures",
    )
)
tenant_site.add_page(
    AdminPage(
        route="analytics/channels/<int:pk>/",
        view=channel_figures_one,
        name="analytics_channel",
        permission=CHANNEL_FIGURES_PERMISSION,
        context_flag="can_view_channel_figures",
    )
)
tenant_site.add_nav(
    NavEntry(
        key="channel_figures",
        label=_("Channel figures"),
        url="analytics_channels",
        permissions=(CHANNEL_FIGURES_PERMISSION,),
        icon="chart",
        order=25,
    )
)
