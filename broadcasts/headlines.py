"""The public headline of a broadcast: what citizens see above it in the archive, as an RSS item
title and as an e-mail subject.

A broadcast's `title` is the team's internal working title ("Entwurf Feinstaub v2") and never
leaves the admin. The headline is the e-mail subject the team wrote for a language, or else the
first line of that language's text. Pure functions, no queries: the hot send path calls them.
"""

from __future__ import annotations

import re

from django.utils.text import Truncator

HEADLINE_MAX_CHARS = 120
_URL = re.compile(r"https?://\S+")
_TRIM = " \t:–—-|·•*_"


def headline_from_text(body: str) -> str:
    """The first line of `body` that says something without its links, at most HEADLINE_MAX_CHARS."""
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    for line in lines:
        words = " ".join(_URL.sub(" ", line).split()).strip(_TRIM)
        if words:
            return Truncator(words).chars(HEADLINE_MAX_CHARS)
    return Truncator(lines[0]).chars(HEADLINE_MAX_CHARS) if lines else ""


def headline(*, subject: str, body: str) -> str:
    """The team's own subject for this language if it wrote one, else the text's first line."""
    return " ".join(subject.split()) or headline_from_text(body)
