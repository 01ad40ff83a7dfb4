"""Filters of the analytics pages (`{% load analytics_format %}`)."""

from __future__ import annotations

from django import template
from django.utils.translation import gettext, pgettext

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """A span of time, short and rounded to what matters: "45 s", "12 min", "3 h 5 min", "2 d 4 h"
    ("–" when there is none)."""
    if seconds is None:
        return "–"
    total = max(0, round(seconds))
    if total < 60:
        return pgettext("duration", "%(s)s s") % {"s": total}
    minutes = round(total / 60)
    if minutes < 60:
        return pgettext("duration", "%(m)s min") % {"m": minutes}
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        if minutes == 0:
            return pgettext("duration", "%(h)s h") % {"h": hours}
        return pgettext("duration", "%(h)s h %(m)s min") % {"h": hours, "m": minutes}
    days, hours = divmod(hours + (1 if minutes >= 30 else 0), 24)
    if hours == 0:
        return pgettext("duration", "%(d)s d") % {"d": days}
    return pgettext("duration", "%(d)s d %(h)s h") % {"d": days, "h": hours}


@register.filter
def no_department(name: str) -> str:
    return name or gettext("No department")
