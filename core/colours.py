"""Colour contrast (WCAG 2.1): a tenant's brand colour is used both as text on the light page and
as the background of white text (header bar, buttons), so the public pages and the staff login
use a version of it dark enough for both, at the AA minimum of 4.5:1."""

from __future__ import annotations

import re

DEFAULT_BRAND = "#1f4e8c"
PAGE_BACKGROUND = "#f6f8fa"  # --bg in static/css/site.css, the lightest surface brand text sits on
AA_NORMAL_TEXT = 4.5
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


def _channels(colour: str) -> tuple[float, float, float]:
    return (int(colour[1:3], 16) / 255, int(colour[3:5], 16) / 255, int(colour[5:7], 16) / 255)


def relative_luminance(colour: str) -> float:
    """WCAG 2.1 relative luminance of #RRGGBB."""

    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(c) for c in _channels(colour))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(first: str, second: str) -> float:
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def brand_on_light(colour: str, *, background: str = PAGE_BACKGROUND, minimum: float = AA_NORMAL_TEXT) -> str:
    """`colour`, mixed with black just enough to reach `minimum` contrast against `background`
    (and so against white text on it too); a colour that already does is returned unchanged, and
    anything that is not #RRGGBB gives the default brand colour."""
    if not isinstance(colour, str) or not _HEX.match(colour):
        return DEFAULT_BRAND
    if contrast_ratio(colour, background) >= minimum:
        return colour.lower()
    red, green, blue = _channels(colour)
    for step in range(1, 101):
        keep = 1 - step / 100
        darker = "#{:02x}{:02x}{:02x}".format(*(round(c * keep * 255) for c in (red, green, blue)))
        if contrast_ratio(darker, background) >= minimum:
            return darker
    return "#000000"
