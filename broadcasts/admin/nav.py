"""The broadcasts' entries in the tenant admin's navigation: the list (with how many are sending
now) and, for approvers, what waits for their approval (four-eyes aware)."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from broadcasts import selectors
from core.admin_sites import NavEntry, tenant_site

TO_APPROVE_QUERY = "to_approve=me"


def _awaiting_me(request: HttpRequest) -> int:
    return selectors.broadcast_list_awaiting_approval_by(request.user).count()


def _sending(request: HttpRequest) -> int:
    return selectors.broadcast_list_sending().count()


tenant_site.add_nav(
    NavEntry(
        key="to_approve",
        label=pgettext_lazy("admin navigation", "To approve"),
        url="broadcasts_broadcast_changelist",
        query=TO_APPROVE_QUERY,
        permissions=("broadcasts.view_broadcast",),
        allowed=lambda request: selectors.user_can_approve(request.user),
        icon="check",
        badge=_awaiting_me,
        badge_label=pgettext_lazy("admin navigation", "waiting for you"),
        order=5,
    )
)
tenant_site.add_nav(
    NavEntry(
        key="broadcasts",
        label=_("Broadcasts"),
        url="broadcasts_broadcast_changelist",
        permissions=("broadcasts.view_broadcast",),
        icon="megaphone",
        badge=_sending,
        badge_label=pgettext_lazy("admin navigation", "sending now"),
        order=10,
    )
)
