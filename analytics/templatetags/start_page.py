"""Template tags of the admin start pages (`{% load start_page %}`): the tenant's (first steps,
then what needs the signed-in person, what is sending, what went out, subscribers) and the
operator's platform overview."""

from __future__ import annotations

from typing import Any

from django import template

from analytics.selectors import (
    LATEST_SENT,
    SUBSCRIBER_CHANGE_DAYS,
    first_steps,
    platform_overview,
    start_page,
)

register = template.Library()


@register.inclusion_tag("analytics/admin/first_steps.html", takes_context=True)
def first_steps_panel(context: template.Context) -> dict[str, Any]:
    """The "first steps" list for the signed-in admin (renders nothing when there is none)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    return {"steps": first_steps(user=user) if user is not None else None, "request": request}


@register.inclusion_tag("analytics/admin/start_page.html", takes_context=True)
def start_page_panel(context: template.Context) -> dict[str, Any]:
    """The cards of the signed-in person's start page, each only when their role allows it."""
    request = context.get("request")
    user = getattr(request, "user", None)
    page = start_page(user) if user is not None and user.is_authenticated else None
    return {
        "page": page,
        "request": request,
        "latest_sent_count": LATEST_SENT,
        "change_days": SUBSCRIBER_CHANGE_DAYS,
        "change_abs": abs(page.subscribers.change) if page is not None and page.subscribers is not None else 0,
    }


@register.inclusion_tag("analytics/admin/platform_overview.html", takes_context=True)
def platform_overview_panel(context: template.Context) -> dict[str, Any]:
    """The operator's overview: tenants by state and the platform's figures from the roll-ups."""
    return {"overview": platform_overview(), "request": context.get("request")}
