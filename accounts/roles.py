"""Roles are Django groups with a fixed set of permissions, declared in code.

accounts declares the base table below; every other app may add a `roles.py` with a
`PERMISSIONS = {role: {"app.codename", ...}}` dict. `accounts.services.roles_sync` merges them
and applies the result (idempotently) in a tenant schema, at onboarding and on every deploy.
"""

from __future__ import annotations

from importlib import import_module

from django.apps import apps
from django.utils.translation import gettext_lazy as _

ADMIN = "admin"
EDITOR = "editor"
APPROVER = "approver"
INBOX_AGENT = "inbox agent"

ROLES = [ADMIN, EDITOR, APPROVER, INBOX_AGENT]
ROLE_LABELS = {
    ADMIN: _("Administrator"),
    EDITOR: _("Editor"),
    APPROVER: _("Approver"),
    INBOX_AGENT: _("Inbox agent"),
}
# Two-factor authentication is mandatory for these roles (and for every operator).
MFA_REQUIRED_ROLES = {ADMIN, APPROVER}

# "app_label.codename" entries; "app_label.*" grants every permission of an app.
BASE_PERMISSIONS: dict[str, set[str]] = {
    ADMIN: {"accounts.*", "auth.view_group"},
    EDITOR: {"accounts.view_auditevent"},
    APPROVER: {"accounts.view_auditevent"},
    INBOX_AGENT: set(),
}


def role_permissions() -> dict[str, set[str]]:
    """The merged role table of every installed app of ours."""
    merged = {role: set(perms) for role, perms in BASE_PERMISSIONS.items()}
    for app_config in apps.get_app_configs():
        if app_config.name == "accounts" or "." in app_config.name:
            continue
        module_name = f"{app_config.name}.roles"
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        for role, perms in getattr(module, "PERMISSIONS", {}).items():
            merged.setdefault(role, set()).update(perms)
    return merged
