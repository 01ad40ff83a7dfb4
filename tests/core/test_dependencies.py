"""The direction of dependencies between our apps, checked on the source (ast), so a stray import
fails here rather than as a cycle some day: core imports no app of ours; accounts does not
import tenants (tenants onboarding uses accounts' services, never the other way round); and
analytics sits above both (it reads every app, none reads it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent.parent
OUR_PACKAGES = {p.name for p in BASE_DIR.iterdir() if (p / "apps.py").exists()} | {"config", "bench", "tests"}


def _imports(package: str) -> list[tuple[str, int, str]]:
    """(file, line, imported top-level package) for every import in `package`, at any depth
    (inside functions and TYPE_CHECKING blocks too)."""
    found = []
    for path in sorted((BASE_DIR / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [(str(path.relative_to(BASE_DIR)), node.lineno, name.split(".")[0]) for name in names]
    return found


def test_the_packages_we_check_exist() -> None:
    assert {"core", "tenants", "accounts", "analytics"} <= OUR_PACKAGES


def test_core_imports_no_app_of_ours() -> None:
    offending = [f"{f}:{line} imports {top}" for f, line, top in _imports("core") if top in OUR_PACKAGES - {"core"}]
    assert offending == []


@pytest.mark.parametrize(
    ("package", "forbidden"), [("accounts", "tenants"), ("accounts", "analytics"), ("tenants", "analytics")]
)
def test_dependencies_point_one_way(package: str, forbidden: str) -> None:
    offending = [f"{f}:{line} imports {top}" for f, line, top in _imports(package) if top == forbidden]
    assert offending == []
