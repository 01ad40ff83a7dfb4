"""Users and the audit log in both admins' navigation (administration).

Editors and approvers may read the audit log (objects link to their history), but as a place to
go it belongs to the administration, so the entry also asks for managing users."""

from __future__ import annotations

from django.utils.translation import pgettext_lazy

from core.admin_sites import NAV_ADMINISTRATION, NAV_WORK, NavEntry, operator_site, tenant_site

tenant_site.add_nav(
    NavEntry(
        key="users",
        label=pgettext_lazy("admin navigation", "Users"),
        url="accounts_user_changelist",
        permissions=("accounts.view_user",),
        icon="user",
        order=120,
        group=NAV_ADMINISTRATION,
    )
)
tenant_site.add_nav(
    NavEntry(
        key="audit_log",
        label=pgettext_lazy("admin navigation", "Audit log"),
        url="accounts_auditevent_changelist",
        permissions=("accounts.view_auditevent", "accounts.change_user"),
        icon="log",
        order=140,
        group=NAV_ADMINISTRATION,
    )
)
operator_site.add_nav(
    NavEntry(
        key="operators",
        label=pgettext_lazy("admin navigation", "Operators"),
        url="accounts_user_changelist",
        permissions=("accounts.view_user",),
        icon="user",
        order=40,
        group=NAV_WORK,
    )
)
operator_site.add_nav(
    NavEntry(
        key="audit_log",
        label=pgettext_lazy("admin navigation", "Audit log"),
        url="accounts_auditevent_changelist",
        permissions=("accounts.view_auditevent",),
        icon="log",
        order=50,
        group=NAV_WORK,
    )
)
tenant_site.add_nav(
    NavEntry(
        key="api_keys",
        label=pgettext_lazy("admin navigation", "API keys"),
        url="accounts_apikey_changelist",
        permissions=("accounts.view_apikey", "accounts.add_apikey"),
        icon="key",
        order=150,
        group=NAV_ADMINISTRATION,
    )
)
