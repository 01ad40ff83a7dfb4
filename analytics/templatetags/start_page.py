"""Template tags of the tenant admin's start page (`{% load start_page %}`)."""

from __future__ import annotations

from typing import Any

from django import template

from analytics.selectors import first_steps

register = template.Library()


@register.inclusion_tag("analytics/admin/first_steps.html", takes_context=True)
def first_steps_panel(context: template.Context) -> dict[str, Any]:
    """The "first steps" list for the signed-in admin (renders nothing when there is none)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    return {"steps": first_steps(user=user) if user is not None else None, "request": request}
