"""Server-side SVG charts for the analytics pages: a line chart of one or more time series and a bar
chart (vertical or horizontal, grouped or stacked), each followed by its data as a table.

Build a chart where the data is read (a selector or view) and render it in a template:

    from analytics.charts import Series, line_chart

    chart = line_chart(
        title=_("Subscribers"),
        x=[day for day, _count in rows],
        series=[Series(_("Subscribers"), [count for _day, count in rows])],
    )

    {{ chart }}

(a Chart renders itself through analytics/chart.html), or `chart.render()` in Python. The layout and every label are worked out at render time, so
numbers and dates follow the language active while the page renders (German "1.234", "1. Dez.";
English "1,234", "Dec 1").

Why like this: no JavaScript and no inline style (the CSP is nonce-only), colours only through
classes whose CSS (analytics/static/analytics/charts.css) reads the admin skin's variables, so
dark mode works; every label goes through Django's autoescaping; the SVG has role="img" with a
<title> and a generated <desc>, and the same numbers are in a <details> table for screen readers
and for copying. Lines differ by dash pattern as well as colour, so colour is never the only cue.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from django.template.loader import render_to_string
from django.utils import formats, timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext, pgettext

XValue = date | datetime | int | float | str
Number = int | float

# The SVG's own coordinate system (CSS scales it to the column's width).
WIDTH = 640
LINE_HEIGHT = 260
BAR_HEIGHT = 260
HBAR_ROW = 26  # height of one category in a horizontal bar chart
FONT = 12  # font size in SVG units (charts.css uses the same)
CHAR = 7.2  # an average character's width at that size (system-ui), for laying out labels
SERIES_CLASSES = 6  # charts.css defines .chart-s1 … .chart-s6; more series reuse them
MAX_X_TICKS = 7
MAX_CATEGORY_LABEL = 28  # characters of a category's name on the axis (the table has it whole)


@dataclass(frozen=True)
class Series:
    """One line or one set of bars: a label and one value per x (or category); None is a gap."""

    label: str
    values: Sequence[Number | None]


@dataclass(frozen=True)
class Chart:
    """What to draw; `line_chart` and `bar_chart` build it and check its shape."""

    kind: Literal["line", "bar"]
    title: str
    x: Sequence[XValue]
    series: Sequence[Series]
    description: str = ""
    x_label: str = ""
    y_label: str = ""
    unit: str = ""  # after every value, e.g. "%" or " min" (with its space where one belongs)
    x_unit: str = ""  # after numeric x values, e.g. " h"
    decimals: int = 0  # decimals of the values in the table (ticks choose their own)
    stacked: bool = False
    horizontal: bool = False
    key: str = field(default_factory=lambda: "chart-" + uuid.uuid4().hex[:8])  # unique per page

    def render(self) -> SafeString:
        return SafeString(render_to_string("analytics/chart.html", {"chart": self.context()}))

    def __html__(self) -> SafeString:
        return self.render()

    def __str__(self) -> str:  # `{{ chart }}`: Django's template engine calls str() before escaping
        return self.render()

    @property
    def is_empty(self) -> bool:
        return not self.x or not any(v is not None for s in self.series for v in s.values)

    def context(self) -> dict[str, Any]:
        """Everything the template needs, as strings formatted in the active language."""
        base: dict[str, Any] = {
            "key": self.key,
            "kind": self.kind,
            "title": self.title,
            "empty": self.is_empty,
            "horizontal": self.horizontal,
            "legend": [{"label": s.label, "css": _series_class(i)} for i, s in enumerate(self.series)]
            if len(self.series) > 1
            else [],
            "table": self._table(),
        }
        if base["empty"]:
            base["description"] = self.description or gettext("No data yet")
            return base
        base["description"] = self.description or self._describe()
        if self.kind == "line":
            base.update(_layout_line(self))
        elif self.horizontal:
            base.update(_layout_hbar(self))
        else:
            base.update(_layout_vbar(self))
        return base

    # -- text alternatives ------------------------------------------------------------------

    def _table(self) -> dict[str, Any]:
        rows = []
        for i, x in enumerate(self.x):
            cells = []
            for s in self.series:
                value = s.values[i] if i < len(s.values) else None
                cells.append("–" if value is None else format_value(value, self.decimals, self.unit))
            rows.append({"x": format_x_full(x, self.x_unit), "cells": cells})
        return {
            "x_label": self.x_label or (pgettext("chart table", "Category") if self.kind == "bar" else gettext("Time")),
            "headers": [s.label for s in self.series],
            "rows": rows,
        }

    def _describe(self) -> str:
        """A sentence per series for the SVG's <desc>: what a sighted reader takes from the shape."""
        parts = []
        if self.kind == "line" and len(self.x) > 1:
            parts.append(
                gettext("From %(first)s to %(last)s.")
                % {"first": format_x_full(self.x[0], self.x_unit), "last": format_x_full(self.x[-1], self.x_unit)}
            )
        for s in self.series:
            known = [(i, v) for i, v in enumerate(s.values) if v is not None and i < len(self.x)]
            if not known:
                parts.append(gettext("%(series)s: no data.") % {"series": s.label})
                continue
            top_i, top = max(known, key=lambda item: item[1])
            values = {
                "series": s.label,
                "first": format_value(known[0][1], self.decimals, self.unit),
                "last": format_value(known[-1][1], self.decimals, self.unit),
                "max": format_value(top, self.decimals, self.unit),
                "at": format_x_full(self.x[top_i], self.x_unit),
                "total": format_value(sum(v for _i, v in known), self.decimals, self.unit),
            }
            if self.kind == "line":
                parts.append(gettext("%(series)s: from %(first)s to %(last)s, highest %(max)s.") % values)
            else:
                parts.append(gettext("%(series)s: total %(total)s, highest %(max)s (%(at)s).") % values)
        return " ".join(parts)


def line_chart(
    *,
    title: str,
    x: Sequence[XValue],
    series: Sequence[Series],
    description: str = "",
    x_label: str = "",
    y_label: str = "",
    unit: str = "",
    x_unit: str = "",
    decimals: int = 0,
    key: str | None = None,
) -> Chart:
    """A line per series over x (dates, datetimes or numbers, ascending; placed by their value,
    so uneven steps such as 1, 5, 15, 60 minutes are drawn to scale)."""
    _check(x, series)
    if any(isinstance(v, str) for v in x):
        raise ValueError("a line chart's x values are dates, datetimes or numbers")
    kwargs: dict[str, Any] = {"key": key} if key else {}
    return Chart(
        kind="line",
        title=title,
        x=list(x),
        series=list(series),
        description=description,
        x_label=x_label,
        y_label=y_label,
        unit=unit,
        x_unit=x_unit,
        decimals=decimals,
        **kwargs,
    )


def bar_chart(
    *,
    title: str,
    categories: Sequence[XValue],
    series: Sequence[Series],
    description: str = "",
    x_label: str = "",
    y_label: str = "",
    unit: str = "",
    decimals: int = 0,
    stacked: bool = False,
    horizontal: bool = False,
    key: str | None = None,
) -> Chart:
    """Bars per category (names, dates or numbers), one bar per series side by side, or stacked
    (positive values upwards, negative ones downwards, e.g. joins and leaves per day).
    `horizontal` suits named categories such as sources or messengers."""
    _check(categories, series)
    kwargs: dict[str, Any] = {"key": key} if key else {}
    return Chart(
        kind="bar",
        title=title,
        x=list(categories),
        series=list(series),
        description=description,
        x_label=x_label,
        y_label=y_label,
        unit=unit,
        decimals=decimals,
        stacked=stacked,
        horizontal=horizontal,
        **kwargs,
    )


def _check(x: Sequence[XValue], series: Sequence[Series]) -> None:
    for s in series:
        if len(s.values) != len(x):
            raise ValueError(f"series {s.label!r} has {len(s.values)} values for {len(x)} x values")
        for v in s.values:
            if v is not None and not math.isfinite(v):
                raise ValueError(f"series {s.label!r} has a value that is not a finite number")


def _series_class(index: int) -> str:
    return f"chart-s{index % SERIES_CLASSES + 1}"


# -- numbers and dates -----------------------------------------------------------------------


def format_value(value: Number, decimals: int = 0, unit: str = "") -> str:
    """A value in full, grouped per language: 1.234.567 (de) / 1,234,567 (en)."""
    if isinstance(value, float) and decimals == 0 and not value.is_integer():
        decimals = 1
    return formats.number_format(round(value, decimals), decimals, force_grouping=True) + unit


def format_compact(value: Number, step: Number) -> str:
    """A tick label: short for large values (12.000 → "12 Tsd." / "12k"), with as many
    decimals as the tick step needs."""
    magnitude = abs(value)
    if magnitude >= 1_000_000_000:
        scaled, template = value / 1_000_000_000, pgettext("chart axis, billions", "%(n)s bn")
        step = step / 1_000_000_000
    elif magnitude >= 1_000_000:
        scaled, template = value / 1_000_000, pgettext("chart axis, millions", "%(n)s M")
        step = step / 1_000_000
    elif magnitude >= 10_000:
        scaled, template = value / 1_000, pgettext("chart axis, thousands", "%(n)sk")
        step = step / 1_000
    else:
        scaled, template = value, "%(n)s"
    # as few decimals as this tick needs, and never more than the step has: 0.5 M, 1 M, 1.25 M
    step_decimals = next((d for d in range(4) if abs(step * 10**d - round(step * 10**d)) < 1e-6), 3)
    decimals = next(
        (d for d in range(step_decimals + 1) if abs(scaled * 10**d - round(scaled * 10**d)) < 1e-6), step_decimals
    )
    text = formats.number_format(round(scaled, decimals), decimals, force_grouping=True)
    return template % {"n": text}


def _local(value: datetime) -> datetime:
    return timezone.localtime(value) if timezone.is_aware(value) else value


def format_x_full(value: XValue, x_unit: str = "") -> str:
    """An x value as the data table shows it."""
    if isinstance(value, datetime):
        return formats.date_format(_local(value), "SHORT_DATETIME_FORMAT")
    if isinstance(value, date):
        return formats.date_format(value, "DATE_FORMAT")
    if isinstance(value, int | float):
        return format_value(value) + x_unit
    return str(value)


def format_x_short(value: XValue, *, with_time: bool = False) -> str:
    """An x value as an axis tick: "1. Dez." / "Dec 1", or the time of day."""
    if isinstance(value, datetime):
        local = _local(value)
        if with_time:
            return formats.time_format(local, "TIME_FORMAT")
        return formats.date_format(local, pgettext("chart axis date format", "M j"))
    if isinstance(value, date):
        return formats.date_format(value, pgettext("chart axis date format", "M j"))
    return str(value)


def _as_float(value: XValue) -> float:
    if isinstance(value, datetime):
        return value.timestamp() if timezone.is_aware(value) else value.replace(tzinfo=UTC).timestamp()
    if isinstance(value, date):
        return float(value.toordinal())
    if isinstance(value, int | float):
        return float(value)
    raise ValueError("not a numeric x value")


def nice_step(span: float, count: int) -> float:
    """A step of 1, 2, 2.5 or 5 × 10^k that divides `span` into at most about `count` parts."""
    if span <= 0:
        return 1.0
    raw = span / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= raw - 1e-12:
            return factor * power
    return 10 * power


def value_ticks(low: float, high: float, *, integers: bool, count: int = 5) -> tuple[list[float], float]:
    """Tick values covering [low, high] (always including 0 when the range spans it) and the step."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high == low:
        high = low + (1 if integers else 1.0)
    step = nice_step(high - low, count)
    if integers:
        step = max(1.0, math.ceil(step))
    start = math.floor(low / step + 1e-9) * step
    end = math.ceil(high / step - 1e-9) * step
    ticks = []
    n = 0
    while start + n * step <= end + step * 1e-9:
        ticks.append(round(start + n * step, 10))
        n += 1
    return ticks, step


# -- layout ----------------------------------------------------------------------------------

_DAY_STEPS = (1, 2, 3, 7, 14, 28, 56, 91, 182, 364)
_HOUR_STEPS = (1, 2, 3, 6, 12, 24, 48, 168)


def _c(value: float) -> str:
    """An SVG coordinate: one decimal, never localised."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _values_integral(chart: Chart) -> bool:
    return all(v is None or float(v).is_integer() for s in chart.series for v in s.values)


def _y_axis(chart: Chart, low: float, high: float, top: float, bottom: float) -> tuple[list[dict[str, Any]], Any, int]:
    ticks, step = value_ticks(low, high, integers=_values_integral(chart))
    t_low, t_high = ticks[0], ticks[-1]

    def scale(v: float) -> float:
        return bottom - (v - t_low) / (t_high - t_low) * (bottom - top)

    texts = [format_compact(t, step) + chart.unit for t in ticks]
    labels = [{"y": _c(scale(t)), "label": text, "zero": t == 0} for t, text in zip(ticks, texts, strict=True)]
    return labels, scale, max(len(text) for text in texts)


def _x_ticks(chart: Chart, xs: list[float]) -> list[tuple[float, str]]:
    """Ticks for a line chart's x axis: whole days, hours or nice numbers within the data."""
    first, last = xs[0], xs[-1]
    sample = chart.x[0]
    if len(xs) == 1 or first == last:
        return [(first, format_x_short(sample) if not isinstance(sample, int | float) else _num_tick(first, 1, chart))]
    span = last - first
    if isinstance(sample, datetime):
        hours = span / 3600
        if hours <= 72:
            step_h = next((h for h in _HOUR_STEPS if hours / h <= MAX_X_TICKS - 1), _HOUR_STEPS[-1])
            local_first = _local(sample)
            # start at the first whole multiple of the step after the first point, local time
            start = local_first.replace(minute=0, second=0, microsecond=0)
            while start < local_first or start.hour % step_h:
                start += timedelta(hours=1)
            out = []
            tick = start
            while _as_float(tick) <= last + 1e-6:
                out.append((_as_float(tick), format_x_short(tick, with_time=True)))
                tick += timedelta(hours=step_h)
            return out or [(first, format_x_short(sample, with_time=True))]
        days = hours / 24
        step_d = next((d for d in _DAY_STEPS if days / d <= MAX_X_TICKS - 1), _DAY_STEPS[-1])
        local_first = _local(sample)
        out = []
        tick = local_first
        while _as_float(tick) <= last + 1e-6:
            out.append((_as_float(tick), format_x_short(tick)))
            tick += timedelta(days=step_d)
        return out
    if isinstance(sample, date):
        days = span
        step_d = next((d for d in _DAY_STEPS if days / d <= MAX_X_TICKS - 1), _DAY_STEPS[-1])
        out = []
        day = sample
        while day.toordinal() <= last:
            out.append((float(day.toordinal()), format_x_short(day)))
            day += timedelta(days=step_d)
        return out
    step = nice_step(span, MAX_X_TICKS - 1)
    origin = math.ceil(first / step - 1e-9) * step
    out = []
    n = 0
    while origin + n * step <= last + step * 1e-9:
        value = round(origin + n * step, 10)
        out.append((value, _num_tick(value, step, chart)))
        n += 1
    return out


def _num_tick(value: float, step: float, chart: Chart) -> str:
    return format_compact(value, step) + chart.x_unit


def _layout_line(chart: Chart) -> dict[str, Any]:
    height = LINE_HEIGHT + (FONT + 6 if chart.x_label else 0)
    known = [v for s in chart.series for v in s.values if v is not None]
    top, bottom = 12.0, height - 34.0 - (FONT + 6 if chart.x_label else 0)
    y_ticks, scale_y, label_chars = _y_axis(chart, min(known), max(known), top, bottom)
    left = 10 + label_chars * CHAR + (FONT + 6 if chart.y_label else 0)
    right = WIDTH - 16.0
    xs = [_as_float(v) for v in chart.x]
    first, last = xs[0], xs[-1]

    def scale_x(v: float) -> float:
        if last == first:
            return (left + right) / 2
        return left + (v - first) / (last - first) * (right - left)

    x_ticks = [{"x": _c(scale_x(v)), "label": label} for v, label in _x_ticks(chart, xs)]
    lines = []
    for i, s in enumerate(chart.series):
        segments: list[list[tuple[float, float]]] = [[]]
        for xv, value in zip(xs, s.values, strict=True):
            if value is None:
                if segments[-1]:
                    segments.append([])
                continue
            segments[-1].append((scale_x(xv), scale_y(value)))
        paths, dots = [], []
        for segment in segments:
            if len(segment) == 1:
                dots.append({"x": _c(segment[0][0]), "y": _c(segment[0][1])})
            elif segment:
                paths.append(" ".join(f"{_c(px)},{_c(py)}" for px, py in segment))
        lines.append({"css": _series_class(i), "label": s.label, "paths": paths, "dots": dots})
    frame = _frame(chart, height=height, box=(left, right, top, bottom), y_ticks=y_ticks, x_ticks=x_ticks)
    return {**frame, "lines": lines}


def _frame(
    chart: Chart, *, height: float, box: tuple[float, float, float, float], y_ticks: list[Any], x_ticks: list[Any]
) -> dict[str, Any]:
    """What a vertical chart's template needs besides its marks: size, plot box, ticks, axis labels."""
    left, right, top, bottom = box
    return {
        "width": WIDTH,
        "height": height,
        "plot": {"left": _c(left), "right": _c(right), "top": _c(top), "bottom": _c(bottom)},
        "y_ticks": y_ticks,
        "x_ticks": x_ticks,
        "x_tick_y": _c(bottom + FONT + 6),
        "y_tick_x": _c(left - 6),
        "y_label_x": _c(FONT),
        "y_label_y": _c((top + bottom) / 2),
        "x_label_y": _c(height - 4),
        "x_label_x": _c((left + right) / 2),
        "x_label": chart.x_label,
        "y_label": chart.y_label,
    }


def _bar_extent(chart: Chart) -> tuple[float, float]:
    if chart.stacked:
        highs, lows = [], []
        for i in range(len(chart.x)):
            values = [v for s in chart.series if (v := s.values[i]) is not None]
            highs.append(sum(v for v in values if v > 0))
            lows.append(sum(v for v in values if v < 0))
        return min(lows), max(highs)
    known = [v for s in chart.series for v in s.values if v is not None]
    return min(known), max(known)


def _bars(chart: Chart, band: float, scale: Any) -> list[dict[str, Any]]:
    """Each bar as (offset along the category axis, length from the zero line) in plot units."""
    n = len(chart.series)
    inner = band * 0.8
    bars = []
    for ci, category in enumerate(chart.x):
        base_up = base_down = 0.0
        for si, s in enumerate(chart.series):
            value = s.values[ci]
            if value is None or value == 0:
                continue
            if chart.stacked:
                offset, thickness = ci * band + band * 0.1, inner
                if value >= 0:
                    start, end = base_up, base_up + value
                    base_up = end
                else:
                    start, end = base_down, base_down + value
                    base_down = end
            else:
                thickness = inner / n
                offset = ci * band + band * 0.1 + si * thickness
                start, end = 0.0, float(value)
            p1, p2 = scale(start), scale(end)
            bars.append(
                {
                    "offset": offset,
                    "thickness": max(thickness - (1 if thickness > 3 else 0), 0.5),
                    "from": min(p1, p2),
                    "length": max(abs(p2 - p1), 0.0),
                    "css": _series_class(si),
                    "tip": f"{format_x_full(category)} · {s.label}: {format_value(value, chart.decimals, chart.unit)}",
                }
            )
    return bars


def _category_label(value: XValue) -> str:
    text = format_x_short(value) if isinstance(value, date) else str(value)
    if isinstance(value, int | float):
        text = format_value(value)
    return text if len(text) <= MAX_CATEGORY_LABEL else text[: MAX_CATEGORY_LABEL - 1] + "…"


def _layout_vbar(chart: Chart) -> dict[str, Any]:
    height = BAR_HEIGHT + (FONT + 6 if chart.x_label else 0)
    low, high = _bar_extent(chart)
    top, bottom = 12.0, height - 34.0 - (FONT + 6 if chart.x_label else 0)
    y_ticks, scale_y, label_chars = _y_axis(chart, low, high, top, bottom)
    left = 10 + label_chars * CHAR + (FONT + 6 if chart.y_label else 0)
    right = WIDTH - 8.0
    count = len(chart.x)
    band = (right - left) / count
    rects = [
        {
            "x": _c(left + bar["offset"]),
            "y": _c(bar["from"]),
            "w": _c(bar["thickness"]),
            "h": _c(bar["length"]),
            "css": bar["css"],
            "tip": bar["tip"],
        }
        for bar in _bars(chart, band, scale_y)
    ]
    # as many category labels as fit: every k-th
    widest = max(len(_category_label(v)) for v in chart.x) * CHAR + 8
    every = max(1, math.ceil(widest / band))
    x_ticks = [
        {"x": _c(left + i * band + band / 2), "label": _category_label(v)}
        for i, v in enumerate(chart.x)
        if i % every == 0
    ]
    frame = _frame(chart, height=height, box=(left, right, top, bottom), y_ticks=y_ticks, x_ticks=x_ticks)
    return {**frame, "rects": rects}


def _layout_hbar(chart: Chart) -> dict[str, Any]:
    count = len(chart.x)
    rows = HBAR_ROW * (len(chart.series) if not chart.stacked and len(chart.series) > 1 else 1)
    top = 8.0
    bottom = top + count * rows
    height = bottom + 30 + (FONT + 4 if chart.y_label else 0)
    labels = [_category_label(v) for v in chart.x]
    left = 10 + max(len(label) for label in labels) * CHAR
    low, high = _bar_extent(chart)
    ticks, step = value_ticks(low, high, integers=_values_integral(chart))
    # the last tick's label is centred on the right edge of the plot: leave room for its half
    right = WIDTH - max(16.0, len(format_compact(ticks[-1], step) + chart.unit) * CHAR / 2 + 4)
    t_low, t_high = ticks[0], ticks[-1]

    def scale(v: float) -> float:
        return left + (v - t_low) / (t_high - t_low) * (right - left)

    rects = [
        {
            "x": _c(bar["from"]),
            "y": _c(top + bar["offset"]),
            "w": _c(bar["length"]),
            "h": _c(bar["thickness"]),
            "css": bar["css"],
            "tip": bar["tip"],
        }
        for bar in _bars(chart, rows, scale)
    ]
    return {
        "width": WIDTH,
        "height": _c(height),
        "plot": {"left": _c(left), "right": _c(right), "top": _c(top), "bottom": _c(bottom)},
        "v_ticks": [{"x": _c(scale(t)), "label": format_compact(t, step) + chart.unit, "zero": t == 0} for t in ticks],
        "categories": [
            {"y": _c(top + i * rows + rows / 2 + FONT / 3), "label": label} for i, label in enumerate(labels)
        ],
        "label_x": _c(left - 6),
        "v_tick_y": _c(bottom + FONT + 6),
        "value_label": chart.y_label,
        "value_label_x": _c((left + right) / 2),
        "value_label_y": _c(height - 4),
        "rects": rects,
    }
