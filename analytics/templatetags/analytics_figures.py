"""Formatting of analytics figures in templates: `{{ value|pct }}` → "12.5 %" / "12,5 %", or
"–" when there is nothing to divide by; `{{ value|pp }}` → "+1.5 pp" / "+1,5 Pp."."""

from __future__ import annotations

from django import template
from django.template.defaultfilters import floatformat
from django.utils.translation import gettext

register = template.Library()


@register.filter
def pct(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{floatformat(value, 1)} %"


@register.filter
def pp(value: float | None) -> str:
    """A change in percentage points, with its sign."""
    if value is None:
        return "–"
    sign = "+" if value > 0 else ("−" if value < 0 else "±")
    return gettext("%(sign)s%(value)s pp") % {"sign": sign, "value": floatformat(abs(value), 1)}
