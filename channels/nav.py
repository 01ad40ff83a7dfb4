"""The channels' entry in the tenant admin's navigation."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from core.admin_sites import NavEntry, tenant_site

tenant_site.add_nav(
    NavEntry(
        key="channels",
        label=_("Channels"),
        url="channels_channel_changelist",
        permissions=("channels.view_channel",),
        icon="hash",
        order=20,
    )
)
