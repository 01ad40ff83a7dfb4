"""The messenger connections' entry in the tenant admin's navigation (administration).

Editors and approvers may look at connections (for the sandbox simulator), but setting them up is
the admins' job, so the entry asks for the change permission."""

from __future__ import annotations

from django.utils.translation import pgettext_lazy

from core.admin_sites import NAV_ADMINISTRATION, NavEntry, tenant_site

tenant_site.add_nav(
    NavEntry(
        key="messengers",
        label=pgettext_lazy("admin navigation", "Messenger"),
        url="messengers_connection_changelist",
        permissions=("messengers.change_connection",),
        icon="plug",
        order=130,
        group=NAV_ADMINISTRATION,
    )
)

# Outgoing webhooks to the tenant's own systems: administrators only (docs/api.md).
tenant_site.add_nav(
    NavEntry(
        key="outgoing-webhooks",
        label=pgettext_lazy("admin navigation", "Outgoing webhooks"),
        url="messengers_webhookendpoint_changelist",
        permissions=("messengers.change_webhookendpoint",),
        icon="plug",
        order=135,
        group=NAV_ADMINISTRATION,
    )
)
