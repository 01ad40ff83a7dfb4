"""Dependencies point downhill: an app's models, services, selectors and tasks import only the
apps below it (docs/layout.md).

Every import counts, also one inside a function or under TYPE_CHECKING, so a new upward import
fails here instead of turning into an import cycle later. An app reaches a higher one only
through the hooks that settings fill in with dotted paths (MESSENGER_INBOUND_HANDLERS, …).
Entry points (admin, views, urls, api, management commands, demo data) sit on top of every app,
as in HackSoft's style: they may call any app's services and selectors, and nothing imports them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Bottom to top; an app may import itself and anything listed before it.
LAYERS = ["core", "accounts", "tenants", "messengers", "channels", "subscribers", "broadcasts", "inbox", "analytics"]
ENTRY_POINTS = {"admin", "views", "urls", "api", "serializers", "management", "demo"}


def _is_entry_point(path: Path, app_folder: Path) -> bool:
    first = path.relative_to(app_folder).parts[0]
    return first.removesuffix(".py") in ENTRY_POINTS


def _imported_apps(path: Path) -> set[tuple[int, str]]:
    found: set[tuple[int, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update((node.lineno, name.split(".")[0]) for name in names if name.split(".")[0] in LAYERS)
    return found


def _violations() -> list[str]:
    problems = []
    for rank, app in enumerate(LAYERS):
        folder = ROOT / app
        if not folder.is_dir():
            continue
        allowed = set(LAYERS[: rank + 1])
        for path in sorted(folder.rglob("*.py")):
            if "migrations" in path.parts or _is_entry_point(path, folder):
                continue
            for line, imported in sorted(_imported_apps(path)):
                if imported not in allowed:
                    problems.append(f"{path.relative_to(ROOT)}:{line} imports {imported} (above {app})")
    return problems


def test_every_app_imports_only_the_apps_below_it() -> None:
    assert _violations() == []


def test_the_check_sees_imports_inside_functions_and_under_type_checking(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from broadcasts.models import Broadcast\n"
        "def f():\n    import subscribers.services\n    from core import tasks\n"
    )
    assert _imported_apps(module) == {(3, "broadcasts"), (5, "subscribers"), (6, "core")}


def test_nothing_imports_an_entry_point_of_another_app() -> None:
    problems = []
    for app in LAYERS:
        folder = ROOT / app
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    parts = node.module.split(".")
                    if parts[0] in LAYERS and parts[0] != app and len(parts) > 1 and parts[1] in ENTRY_POINTS:
                        problems.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}")
    assert problems == []
