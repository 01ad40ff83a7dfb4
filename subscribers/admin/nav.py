"""The subscribers' entry in the tenant admin's navigation."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from core.admin_sites import NavEntry, tenant_site

tenant_site.add_nav(
    NavEntry(
        key="subscribers",
        label=_("Subscribers"),
        url="subscribers_subscriber_changelist",
        permissions=("subscribers.view_subscriber",),
        icon="users",
        order=30,
    )
)
# order 40 is kept for the inbox (Postfach): inbox/admin/nav.py adds it, with the unanswered
# conversations as its badge (see docs/admin.md).
