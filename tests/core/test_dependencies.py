"""The direction of dependencies between our apps (docs/layout.md), checked on the source (ast),
so a stray import fails here rather than as a cycle some day.

Every import counts, also one inside a function or under TYPE_CHECKING. An app's models,
services, selectors and tasks import only the apps below it in LAYERS; it reaches a higher one
only through the hooks that settings fill in with dotted paths (MESSENGER_INBOUND_HANDLERS, …).
Entry points (admin, views, urls, api, management commands, demo data) sit on top of every app,
as in HackSoft's style: they may call any app's services and selectors, and no other app imports
them. Stricter still, without that exception: core imports no app of ours at all, and accounts
does not import tenants (tenants onboarding uses accounts' services, never the other way round).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent.parent
OUR_PACKAGES = {p.name for p in BASE_DIR.iterdir() if (p / "apps.py").exists()} | {"config", "bench", "tests"}


def _imports(package: str) -> list[tuple[str, int, str]]:
    """(file, line, imported top-level package) for every import in `package`, at any depth
    (inside functions and TYPE_CHECKING blocks too)."""
    return _imports_in(BASE_DIR, package)


def _imports_in(base: Path, package: str) -> list[tuple[str, int, str]]:
    found = []
    for path in sorted((base / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [(str(path.relative_to(base)), node.lineno, name.split(".")[0]) for name in names]
    return found


def test_the_packages_we_check_exist() -> None:
    assert {"core", "tenants", "accounts", "analytics"} <= OUR_PACKAGES


def test_core_imports_no_app_of_ours() -> None:
    offending = [f"{f}:{line} imports {top}" for f, line, top in _imports("core") if top in OUR_PACKAGES - {"core"}]
    assert offending == []


# Bottom to top; an app may import itself and anything listed before it.
LAYERS = ["core", "accounts", "tenants", "messengers", "channels", "subscribers", "broadcasts", "inbox", "analytics"]
ENTRY_POINTS = {"admin", "views", "urls", "api", "serializers", "management", "demo"}


def _is_entry_point(path: str, app: str) -> bool:
    return Path(path).relative_to(app).parts[0].removesuffix(".py") in ENTRY_POINTS


@pytest.mark.parametrize(
    ("package", "forbidden"), [("accounts", "tenants"), ("accounts", "analytics"), ("tenants", "analytics")]
)
def test_dependencies_point_one_way(package: str, forbidden: str) -> None:
    offending = [f"{f}:{line} imports {top}" for f, line, top in _imports(package) if top == forbidden]
    assert offending == []


def test_every_app_imports_only_the_apps_below_it() -> None:
    offending = []
    for rank, app in enumerate(LAYERS):
        if not (BASE_DIR / app).is_dir():
            continue
        allowed = set(LAYERS[: rank + 1])
        offending += [
            f"{f}:{line} imports {top} (above {app})"
            for f, line, top in _imports(app)
            if top in LAYERS and top not in allowed and "migrations" not in f and not _is_entry_point(f, app)
        ]
    assert offending == []


def test_no_app_imports_another_apps_entry_points() -> None:
    offending = []
    for app in LAYERS:
        if not (BASE_DIR / app).is_dir():
            continue
        for path in sorted((BASE_DIR / app).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    parts = node.module.split(".")
                    if parts[0] in LAYERS and parts[0] != app and len(parts) > 1 and parts[1] in ENTRY_POINTS:
                        offending.append(f"{path.relative_to(BASE_DIR)}:{node.lineno} imports {node.module}")
    assert offending == []


def test_the_check_sees_imports_inside_functions_and_under_type_checking(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "m.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from broadcasts.models import Broadcast\n"
        "def f():\n    import subscribers.services\n    from core import tasks\n"
    )
    found = {(line, top) for _, line, top in _imports_in(tmp_path, "pkg")}
    assert {(3, "broadcasts"), (5, "subscribers"), (6, "core")} <= found
