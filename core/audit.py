"""What each audit action is called: the audit log stores a code (`broadcast.created`); people
read a label in their language (`Aussendung erstellt`).

Each app names the actions it writes as `LABELS` in its `audit.py`; this module only collects
them (as core.schedules does with `schedules.py`), so core names no app. An action without a
label shows its code: tests/accounts/test_audit_labels.py fails for any action written in code
without one.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module

from django.apps import apps
from django.utils.functional import Promise
from django.utils.module_loading import module_has_submodule


@cache
def audit_labels() -> dict[str, Promise | str]:
    """Every installed app's `audit.LABELS` (action code → lazy label), in INSTALLED_APPS order."""
    found: dict[str, Promise | str] = {}
    for app in apps.get_app_configs():
        if module_has_submodule(app.module, "audit"):
            found.update(getattr(import_module(f"{app.name}.audit"), "LABELS", {}))
    return found


def audit_action_choices() -> list[tuple[str, Promise | str]]:
    """The labels as field choices (AuditEvent.action; a callable, so migrations keep no copy)."""
    return sorted(audit_labels().items())


def audit_action_label(action: str) -> str:
    """The action's label in the active language, or the code for an action nobody labelled."""
    return str(audit_labels().get(action, action))
