"""axe-core on the page a browser test is looking at (issue 10, item 9): `assert_accessible(page,
context="…")` fails on every violation of impact "critical" or "serious", naming rule, impact,
element and what to fix. axe-core comes bundled in axe-playwright-python (no CDN at run time); it is
injected into the page and each of its frames through Playwright's evaluate, which the page's CSP
does not govern, so the pages keep their strict CSP while they are checked.

Admin pages that the admin reskin (issue 10, item 1) replaces have known violations listed in
KNOWN_ADMIN_VIOLATIONS; each entry is to be removed once the reskinned page fixes it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from axe_playwright_python.sync_playwright import Axe

FAILING_IMPACTS = frozenset({"critical", "serious"})

# Every rule axe-core runs by default (WCAG 2.0/2.1/2.2 A and AA, best practices), with colour
# contrast at WCAG 2.1 AA; "experimental" rules stay off.
AXE_OPTIONS: dict[str, Any] = {"resultTypes": ["violations"]}


@dataclass(frozen=True)
class Known:
    """A violation that is allowed for now: rule id, a regex on the page path, one on the selector."""

    rule: str
    path: str
    target: str
    why: str

    def covers(self, rule: str, path: str, target: str) -> bool:
        return rule == self.rule and bool(re.search(self.path, path)) and bool(re.search(self.target, target))


# Violations in admin pages that others are redesigning in issue 10 (admin skin, compose, sandbox
# simulator). The integrator removes an entry once its page passes.
KNOWN_ADMIN_VIOLATIONS: tuple[Known, ...] = ()


@dataclass(frozen=True)
class Violation:
    rule: str
    impact: str
    target: str
    help: str
    url: str

    def __str__(self) -> str:
        return f"{self.rule} ({self.impact}) at {self.target}: {self.help} [{self.url}]"


_AXE_SCRIPT = Axe().axe_script


def _inject(page: Any) -> None:
    for frame in page.frames:
        if frame.is_detached():
            continue
        if not frame.evaluate("() => typeof window.axe !== 'undefined'"):
            frame.evaluate(_AXE_SCRIPT)
            # axe answers only its own origin by default; the widget is checked inside another site
            frame.evaluate("() => axe.configure({allowedOrigins: ['<unsafe_all_origins>']})")


def _path_of(url: str) -> str:
    return re.sub(r"^[a-z]+://[^/]+", "", url)


def violations(page: Any, *, known: tuple[Known, ...] = KNOWN_ADMIN_VIOLATIONS) -> list[Violation]:
    """The critical and serious violations on the page as it is now (frames included), minus the
    known ones."""
    _inject(page)
    results = page.evaluate("(options) => axe.run(document, options)", AXE_OPTIONS)
    path = _path_of(page.url)
    found: list[Violation] = []
    for violation in results["violations"]:
        for node in violation["nodes"]:
            impact = node.get("impact") or violation.get("impact") or ""
            if impact not in FAILING_IMPACTS:
                continue
            target = " >> ".join(" ".join(part) if isinstance(part, list) else part for part in node["target"])
            if any(entry.covers(violation["id"], path, target) for entry in known):
                continue
            found.append(Violation(violation["id"], impact, target, violation["help"], violation["helpUrl"]))
    return found


def assert_accessible(page: Any, context: str = "", *, known: tuple[Known, ...] = KNOWN_ADMIN_VIOLATIONS) -> None:
    """Fail unless axe-core finds no critical or serious violation on the page.

    With A11Y_SURVEY=<file> in the environment it appends what it finds to that file instead of
    failing, so one run of the browser tests lists every violation at once."""
    found = violations(page, known=known)
    if not found:
        return
    where = f"{context} ({_path_of(page.url)})" if context else _path_of(page.url)
    lines = "\n".join(f"  - {violation}" for violation in found)
    survey = os.environ.get("A11Y_SURVEY")
    if survey:
        with open(survey, "a", encoding="utf-8") as out:
            out.write(f"{where}:\n{lines}\n")
        return
    raise AssertionError(f"accessibility violations on {where}:\n{lines}")
