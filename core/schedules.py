"""Periodic jobs, declared in code and applied by `manage.py setup_schedules` (idempotent).

Each app declares its own jobs as `SCHEDULES` in its `schedules.py`; this module only collects
them, so core names no app. django-q2 schedules have minute resolution; work that must react
within seconds (due broadcasts, webhook events) is driven by the dispatcher process instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from django.apps import apps
from django.utils.module_loading import module_has_submodule

PREFIX = "mnl:"


@dataclass(frozen=True)
class Scheduled:
    name: str
    func: Callable[..., Any] | str
    minutes: int
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def func_path(self) -> str:
        if isinstance(self.func, str):
            return self.func
        return f"{self.func.__module__}.{self.func.__qualname__}"


def schedules_collect() -> list[Scheduled]:
    """Every installed app's `schedules.SCHEDULES`, in INSTALLED_APPS order."""
    found: list[Scheduled] = []
    for app in apps.get_app_configs():
        if module_has_submodule(app.module, "schedules"):
            found.extend(getattr(import_module(f"{app.name}.schedules"), "SCHEDULES", []))
    return found
