"""The tenant's settings in its admin's navigation; the operator's tenants, onboarding and
platform overview in the operator admin's."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from core.admin_sites import NAV_ADMINISTRATION, NavEntry, operator_site, tenant_site
from tenants.views import SETTINGS_PERMISSION

tenant_site.add_nav(
    NavEntry(
        key="settings",
        label=_("Settings"),
        url="tenant_settings",
        permissions=(SETTINGS_PERMISSION,),
        icon="gear",
        order=110,
        group=NAV_ADMINISTRATION,
    )
)
operator_site.add_nav(
    NavEntry(
        key="overview",
        label=pgettext_lazy("admin navigation", "Platform overview"),
        url="index",
        icon="chart",
        order=10,
    )
)
operator_site.add_nav(
    NavEntry(
        key="tenants",
        label=_("Tenants"),
        url="tenants_tenant_changelist",
        permissions=("tenants.view_tenant",),
        icon="building",
        order=20,
    )
)
operator_site.add_nav(
    NavEntry(
        key="onboarding",
        label=pgettext_lazy("admin navigation", "Onboarding"),
        url="tenants_tenant_onboard",
        permissions=("tenants.change_tenant",),
        icon="plus",
        order=30,
    )
)
