"""A tenant's brand colour on the public pages and the staff login always meets WCAG 2.1 AA
(4.5:1) as text on the page and behind white text, whatever colour the tenant chose."""

from __future__ import annotations

import pytest

from core.colours import DEFAULT_BRAND, PAGE_BACKGROUND, brand_on_light, contrast_ratio

WHITE = "#ffffff"


def test_contrast_ratio_matches_the_wcag_reference_values() -> None:
    assert contrast_ratio("#000000", WHITE) == pytest.approx(21.0)
    assert contrast_ratio(WHITE, WHITE) == pytest.approx(1.0)
    assert contrast_ratio("#767676", WHITE) == pytest.approx(4.54, abs=0.01)  # the lightest AA grey on white


@pytest.mark.parametrize("colour", ["#1f4e8c", "#c8102e", "#00205B"])
def test_a_dark_enough_brand_colour_is_kept(colour: str) -> None:
    assert brand_on_light(colour) == colour.lower()


@pytest.mark.parametrize("colour", ["#ffcc00", "#ffffff", "#7fdbff", "#e30613", "#00a650", "#ff8800"])
def test_a_light_brand_colour_is_darkened_just_enough(colour: str) -> None:
    readable = brand_on_light(colour)
    assert contrast_ratio(readable, PAGE_BACKGROUND) >= 4.5
    assert contrast_ratio(readable, WHITE) >= 4.5
    assert readable != "#000000" or colour == "#ffffff"  # a hue stays a hue
    if colour != "#ffffff":
        red, green, blue = (int(readable[i : i + 2], 16) for i in (1, 3, 5))
        original = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
        assert [red, green, blue].index(max(red, green, blue)) == original.index(max(original))


@pytest.mark.parametrize("hostile", ["", "red", "#fff", "#12345g", "#1f4e8c; } body { display:none", None])
def test_anything_but_a_hex_colour_gives_the_default(hostile: object) -> None:
    assert brand_on_light(hostile) == DEFAULT_BRAND  # type: ignore[arg-type]
