"""Every audit action the code writes has a label in its app's audit.py (core.audit), and the
audit log shows labels, not codes (issue 10, item 6)."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.utils import translation

from accounts.models import AuditEvent
from accounts.selectors import audit_target_kind
from accounts.services import audit_log
from broadcasts.services.workflow import REFUSAL_ACTIONS
from core.audit import audit_action_label, audit_labels
from tenants.models import Tenant

APPS = ["accounts", "analytics", "broadcasts", "channels", "core", "messengers", "subscribers", "tenants"]
# action="broadcast.created" in a call, or action = "…" assigned before one
ACTION_LITERAL = re.compile(r"""\baction\s*=\s*["']([a-z_]+\.[a-z_]+)["']""")


def _actions_in_code() -> set[str]:
    found: set[str] = set(REFUSAL_ACTIONS.values())
    for app in APPS:
        for path in (Path(settings.BASE_DIR) / app).rglob("*.py"):
            if "migrations" not in path.parts:
                found |= set(ACTION_LITERAL.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_audit_action_in_the_code_has_a_label() -> None:
    actions = _actions_in_code()
    assert len(actions) >= 40, sorted(actions)  # the grep still finds the calls
    missing = sorted(actions - set(audit_labels()))
    assert not missing, f"add these to LABELS in the app's audit.py: {missing}"


def test_labels_are_german_and_english_and_unknown_codes_show_as_they_are() -> None:
    with translation.override("en"):
        english = {code: str(label) for code, label in audit_labels().items()}
        assert audit_action_label("broadcast.created") == "Broadcast created"
    with translation.override("de"):
        german = {code: str(label) for code, label in audit_labels().items()}
        assert audit_action_label("broadcast.created") == "Aussendung erstellt"
    untranslated = sorted(code for code in english if english[code] == german[code])
    assert not untranslated, f"no German in the catalogue for: {untranslated}"
    assert audit_action_label("nobody.labelled_this") == "nobody.labelled_this"


def test_audit_events_show_their_label_and_the_targets_kind(tenant: Tenant) -> None:
    event = audit_log(action="tenant.settings_changed", target_label="Stadt A")
    with translation.override("de"):
        assert event.get_action_display() == "Einstellungen geändert"
        assert "tenant.settings_changed" not in str(event)
        assert audit_target_kind("accounts.user") == "Benutzerkonto"
    assert audit_target_kind("gone.model") == "gone.model"
    assert AuditEvent.objects.filter(pk=event.pk).exists()
