"""The SVG chart component (analytics/charts.py, analytics/chart.html): well-formed markup, CSP-safe,
escaped labels, text alternatives, German and English formatting, and the edge cases (no data,
one point, huge values, negative stacks)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest
from django.template import Context, Template
from django.utils import translation

from analytics.charts import Series, bar_chart, line_chart, nice_step, value_ticks

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
NUMBER = re.compile(r"^-?\d+(\.\d)?$")


def parse(html: str) -> ET.Element:
    """The component's output is also well-formed XML: a broken tag or an unescaped label fails here."""
    markup = f"<root>{html}</root>".replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ')
    return ET.fromstring(markup)  # noqa: S314 - our own output, no entities or DTDs to fear


def days(n: int, start: date = date(2026, 9, 1)) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]


def assert_csp_safe(html: str) -> None:
    assert " style=" not in html and "<style" not in html and "<script" not in html.lower()
    assert not re.search(r"<[^>]+\son\w+=", html)


def svg_of(root: ET.Element) -> ET.Element:
    svg = root.find(f".//{SVG}svg[@role='img']")
    assert svg is not None
    return svg


def test_line_chart_is_an_accessible_image_with_a_data_table() -> None:
    chart = line_chart(
        title="Subscribers",
        x=days(90),
        series=[Series("Stuttgart", [100 + i for i in range(90)]), Series("Verkehr", [50 + 2 * i for i in range(90)])],
        y_label="People",
    )
    with translation.override("en"):
        html = chart.render()
    root = parse(html)
    svg = svg_of(root)
    title_id, desc_id = svg.get("aria-labelledby", "").split()
    assert svg.find(f"{SVG}title[@id='{title_id}']").text == "Subscribers"  # type: ignore[union-attr]
    desc = svg.find(f"{SVG}desc[@id='{desc_id}']").text or ""  # type: ignore[union-attr]
    assert "Stuttgart: from 100 to 189, highest 189." in desc
    assert "From Sept. 1, 2026 to Nov. 29, 2026." in desc
    assert len(svg.findall(f".//{SVG}polyline")) == 2
    assert [li.itertext() and "".join(li.itertext()) for li in root.iter("li")] == ["Stuttgart", "Verkehr"]
    table = root.find(".//details/div/table")
    assert table is not None
    assert [th.text for th in table.iter("th")][:3] == ["Time", "Stuttgart", "Verkehr"]
    rows = table.findall("./tbody/tr")
    assert len(rows) == 90
    assert [c.text for c in rows[-1]] == ["Nov. 29, 2026", "189", "228"]
    assert_csp_safe(html)
    # axis labels: a handful of ticks, and the y axis starts at zero
    ticks = [t.text for t in svg.iter(f"{SVG}text")]
    assert "0" in ticks and "Sep 1" in ticks and 3 <= sum(1 for t in ticks if t and t[:3] in ("Sep", "Oct", "Nov")) <= 7


def test_coordinates_are_never_localised() -> None:
    """German uses a decimal comma; SVG coordinates must keep their dots."""
    chart = line_chart(title="t", x=[0, 1, 3, 7], series=[Series("a", [0.5, 1.25, 2.75, 3.5])], decimals=2)
    with translation.override("de"):
        html = chart.render()
    svg = svg_of(parse(html))
    for polyline in svg.iter(f"{SVG}polyline"):
        for pair in (polyline.get("points") or "").split():
            x, y = pair.split(",")
            assert NUMBER.match(x) and NUMBER.match(y)
    for line in svg.iter(f"{SVG}line"):
        assert all(NUMBER.match(line.get(a) or "") for a in ("x1", "x2", "y1", "y2"))
    assert "3,50" in html  # the table does use the German format


def test_uneven_x_values_are_drawn_to_scale() -> None:
    minutes = [0, 1, 5, 15, 60, 1440]
    chart = line_chart(title="t", x=minutes, series=[Series("read", [0, 10, 40, 70, 90, 100])], x_unit=" min")
    svg = svg_of(parse(chart.render()))
    points = [tuple(map(float, p.split(","))) for p in (svg.find(f".//{SVG}polyline").get("points") or "").split()]  # type: ignore[union-attr]
    xs = [p[0] for p in points]
    span = xs[-1] - xs[0]
    for minute, px in zip(minutes, xs, strict=True):
        assert px - xs[0] == pytest.approx(span * minute / 1440, abs=0.1)
    # higher values are drawn higher (smaller y)
    ys = [p[1] for p in points]
    assert ys == sorted(ys, reverse=True)


@pytest.mark.parametrize("language", ["de", "en"])
def test_hostile_labels_are_escaped(language: str) -> None:
    charts = [
        line_chart(
            title=HOSTILE, x=days(3), series=[Series(HOSTILE, [1, 2, 3]), Series("b", [3, 2, 1])], y_label=HOSTILE
        ),
        bar_chart(title=HOSTILE, categories=[HOSTILE, "ok"], series=[Series(HOSTILE, [1, 2])], horizontal=True),
        bar_chart(
            title="t", categories=[HOSTILE, "x"], series=[Series("a", [1, 2]), Series(HOSTILE, [2, 1])], x_label=HOSTILE
        ),
        bar_chart(title="t", categories=["a"], series=[Series("a", [1])], description=HOSTILE),
    ]
    for chart in charts:
        with translation.override(language):
            html = chart.render()
        assert "<script>" not in html and "<img" not in html
        assert "&lt;script&gt;" in html
        root = parse(html)  # still well-formed
        assert not [el for el in root.iter() if any(name.startswith("on") for name in el.attrib)]


def test_no_data_says_so_in_both_languages() -> None:
    for chart in (
        line_chart(title="Subscribers", x=[], series=[]),
        line_chart(title="Subscribers", x=days(3), series=[Series("a", [None, None, None])]),
        bar_chart(title="Sources", categories=[], series=[Series("a", [])]),
    ):
        with translation.override("de"):
            german = chart.render()
        with translation.override("en"):
            english = chart.render()
        assert "Noch keine Daten" in german and "No data yet" not in german
        assert "No data yet" in english
        assert "<svg" not in english and "<table" not in english
        parse(german)


def test_a_single_point_is_a_dot_in_the_middle() -> None:
    chart = line_chart(title="t", x=[date(2026, 10, 27)], series=[Series("a", [5])])
    with translation.override("de"):
        html = chart.render()
    svg = svg_of(parse(html))
    assert svg.findall(f".//{SVG}polyline") == []
    dots = svg.findall(f".//{SVG}circle")
    assert len(dots) == 1
    assert float(dots[0].get("cx") or 0) == pytest.approx(320, abs=30)
    assert "27. Okt" in [t.text for t in svg.iter(f"{SVG}text")]
    # a gap leaves an isolated point drawn as a dot, the rest as lines
    gap = line_chart(title="t", x=days(5), series=[Series("a", [1, 2, None, 4, None])])
    svg = svg_of(parse(gap.render()))
    assert len(svg.findall(f".//{SVG}polyline")) == 1 and len(svg.findall(f".//{SVG}circle")) == 1
    bars = bar_chart(title="t", categories=["Telegram"], series=[Series("n", [7])], horizontal=True)
    svg = svg_of(parse(bars.render()))
    assert len(svg.findall(f".//{SVG}rect")) == 1


def test_huge_values_get_short_ticks_and_full_numbers_in_the_table() -> None:
    values = [0, 1_250_000_000, 3_400_000_000]
    chart = line_chart(title="t", x=days(3), series=[Series("a", values)])
    with translation.override("de"):
        german = chart.render()
    with translation.override("en"):
        english = chart.render()
    de_ticks = [t.text for t in svg_of(parse(german)).iter(f"{SVG}text")]
    en_ticks = [t.text for t in svg_of(parse(english)).iter(f"{SVG}text")]
    assert "4 Mrd." in de_ticks and "4 bn" in en_ticks
    assert "3.400.000.000" in german and "3,400,000,000" in english
    svg = svg_of(parse(english))
    for pair in (svg.find(f".//{SVG}polyline").get("points") or "").split():  # type: ignore[union-attr]
        x, y = map(float, pair.split(","))
        assert 0 <= x <= 640 and 0 <= y <= 260
    thousands = line_chart(title="t", x=[1, 2], series=[Series("a", [0, 62_500])])
    with translation.override("de"):
        ticks = [t.text for t in svg_of(parse(thousands.render())).iter(f"{SVG}text")]
    assert ticks[:5] == ["0", "20 Tsd.", "40 Tsd.", "60 Tsd.", "80 Tsd."]
    quarter = line_chart(title="t", x=[1, 2], series=[Series("a", [0, 1_200_000])])
    with translation.override("en"):
        ticks = [t.text for t in svg_of(parse(quarter.render())).iter(f"{SVG}text")]
    assert ticks[:6] == ["0", "250k", "500k", "750k", "1 M", "1.25 M"]


def test_dates_follow_the_language() -> None:
    chart = bar_chart(title="Joins", categories=days(3, date(2026, 10, 27)), series=[Series("joins", [1, 2, 3])])
    with translation.override("de"):
        german = chart.render()
    with translation.override("en"):
        english = chart.render()
    assert "27. Okt" in german and "27. Oktober 2026" in german and "Daten als Tabelle zeigen" in german
    assert "Kategorie" in german
    assert "Oct 27" in english and "Oct. 27, 2026" in english and "Show the data as a table" in english


def test_hours_of_a_day_are_ticked_in_local_time() -> None:
    start = datetime(2026, 12, 1, 7, 30, tzinfo=UTC)  # 08:30 in Berlin
    chart = line_chart(
        title="t",
        x=[start + timedelta(minutes=m) for m in (0, 10, 60, 600, 1440)],
        series=[Series("a", [0, 1, 2, 3, 4])],
    )
    with translation.override("de"):
        ticks = [t.text for t in svg_of(parse(chart.render())).iter(f"{SVG}text")]
    assert "12:00" in ticks and "18:00" in ticks and "00:00" in ticks


def test_stacked_bars_put_negative_values_below_the_zero_line() -> None:
    chart = bar_chart(
        title="Joins and leaves",
        categories=days(4),
        series=[Series("joins", [5, 0, 3, 8]), Series("leaves", [-2, -1, 0, -4])],
        stacked=True,
    )
    with translation.override("en"):
        svg = svg_of(parse(chart.render()))
    zero = next(line for line in svg.iter(f"{SVG}line") if line.get("class") == "chart-zero")
    zero_y = float(zero.get("y1") or 0)
    rects = svg.findall(f".//{SVG}rect")
    joins = [r for r in rects if "chart-s1" in (r.get("class") or "")]
    leaves = [r for r in rects if "chart-s2" in (r.get("class") or "")]
    assert len(joins) == 3 and len(leaves) == 3  # zero values draw nothing
    for r in joins:
        assert float(r.get("y") or 0) + float(r.get("height") or 0) == pytest.approx(zero_y, abs=0.2)
    for r in leaves:
        assert float(r.get("y") or 0) == pytest.approx(zero_y, abs=0.2)
    # a bar's length is proportional to its value
    heights = {r.find(f"{SVG}title").text: float(r.get("height") or 0) for r in joins}  # type: ignore[union-attr]
    assert heights["Sept. 4, 2026 · joins: 8"] == pytest.approx(heights["Sept. 1, 2026 · joins: 5"] * 8 / 5, rel=0.02)


def test_grouped_bars_sit_side_by_side() -> None:
    chart = bar_chart(title="t", categories=["a", "b"], series=[Series("x", [1, 2]), Series("y", [3, 4])])
    svg = svg_of(parse(chart.render()))
    rects = svg.findall(f".//{SVG}rect")
    assert len(rects) == 4
    first_x, first_y = (float(rects[i].get("x") or 0) for i in (0, 1))
    assert first_y > first_x  # the second series' bar right of the first's
    assert float(rects[0].get("x") or 0) + float(rects[0].get("width") or 0) <= first_y + 0.01


def test_a_chart_renders_itself_in_a_template() -> None:
    chart = bar_chart(title="Messenger", categories=["WhatsApp"], series=[Series("n", [3])], key="mix")
    html = Template("<div>{{ chart }}</div>").render(Context({"chart": chart}))
    assert 'id="mix"' in html and "&lt;figure" not in html and 'href="/static/analytics/charts.css"' in html


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        line_chart(title="t", x=days(2), series=[Series("a", [1])])
    with pytest.raises(ValueError):
        line_chart(title="t", x=days(2), series=[Series("a", [1, float("nan")])])
    with pytest.raises(ValueError):
        line_chart(title="t", x=["a", "b"], series=[Series("a", [1, 2])])


@pytest.mark.parametrize(
    ("low", "high", "integers"),
    [(0, 1, True), (0, 7, True), (0, 97, True), (0, 1234, True), (-45, 120, True), (0, 0.37, False), (0, 3.4e9, True)],
)
def test_value_ticks_are_nice_and_cover_the_data(low: float, high: float, integers: bool) -> None:
    ticks, step = value_ticks(low, high, integers=integers)
    assert ticks[0] <= low and ticks[-1] >= high and 0 in ticks
    assert 2 <= len(ticks) <= 8
    mantissa = step / 10 ** int(f"{step:e}".split("e")[1])
    assert round(mantissa, 6) in (1, 2, 2.5, 5)
    if integers:
        assert step >= 1 and float(step).is_integer()
    assert nice_step(0, 5) == 1.0
