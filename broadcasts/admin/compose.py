"""The compose page's right pane and its read-only "what went out": the context the two-pane
change form renders (preview tabs, the texts the preview script shows, the template data, the
send plan and the "send a test to me" button). Reads only; the view behind the test button is
in broadcasts.admin.workflow."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext

from accounts.models import User
from broadcasts import selectors, services
from broadcasts.models import Broadcast
from broadcasts.services.testsend import TESTABLE, sandbox_test_address
from subscribers.models import Language

KIND_LABELS = {"whatsapp": "WhatsApp", "telegram": "Telegram", "sms": "SMS"}


def kind_label(kind: str) -> str:
    """A messenger's name as people write it (never the raw code)."""
    if kind == "email":
        return gettext("E-mail")
    if kind == "sandbox":
        return gettext("Simulator")
    return KIND_LABELS.get(kind, kind)


def template_choices(request: HttpRequest) -> list[selectors.TemplateChoice]:
    """The approved templates, read once per request (the form and the fieldsets both need them)."""
    cached = getattr(request, "_bc_template_choices", None)
    if cached is None:
        cached = selectors.whatsapp_template_choices()
        request._bc_template_choices = cached  # type: ignore[attr-defined]
    return cached


def preview_texts() -> dict[str, str]:
    """Everything the preview script writes, in the user's language ({placeholders} are filled
    in by the script)."""
    return {
        "chars": gettext("{count} of {limit} characters"),
        "sms": gettext("{segments} SMS ({encoding}, {count} characters)"),
        "template": gettext("Template: {name}"),
        "noTemplate": gettext("Without a template, WhatsApp reaches only people who wrote in the last 24 hours."),
        "templateIntro": gettext("Outside the 24-hour window WhatsApp delivers the template instead:"),
        "unsubscribe": gettext("Unsubscribe"),
        "empty": "…",
    }


def compose_context(
    request: HttpRequest,
    broadcast: Broadcast | None,
    user: User | None,
    *,
    sent_groups: list[tuple[str, str, str, bool, int]] | None = None,
) -> dict[str, Any]:
    """What the two-pane change form needs besides the form itself (`sent_groups`: what went
    out, counted already; see selectors.broadcast_sent_content)."""
    editable = broadcast is None or broadcast.status in services.EDITABLE
    languages = dict(Language.choices)
    if editable:
        preview_languages = [(code, str(label)) for code, label in Language.choices]
    else:
        stored = sorted(v.language for v in broadcast.variants.all()) if broadcast else []
        preview_languages = [(code, str(languages.get(code, code))) for code in stored] or [("de", "Deutsch")]
    kinds = selectors.broadcast_preview_kinds(broadcast)
    context: dict[str, Any] = {
        "preview_kinds": [(kind, kind_label(kind)) for kind in kinds],
        "preview_languages": preview_languages,
        "preview_texts": preview_texts(),
        "template_data": {
            c.value: {"name": c.name, "language": c.language, "body": c.body, "parameters": c.parameters}
            for c in template_choices(request)
        }
        if editable
        else {},
        "test_send": None,
    }
    if broadcast is not None and broadcast.status in TESTABLE and services.user_can_send_test(user):
        assert user is not None
        context["test_send"] = {
            "address": sandbox_test_address(user),
            "simulator": user.has_perm("messengers.use_sandbox"),
        }
    if broadcast is not None and not editable:
        default_language = getattr(getattr(request, "tenant", None), "default_language", "de") or "de"
        sent = selectors.broadcast_sent_content(broadcast, default_language=default_language, groups=sent_groups)
        context["show_went_out"] = True
        context["went_out"] = [
            {
                "message": message,
                "kind": kind_label(message.provider),
                "language": languages.get(message.language, message.language),
            }
            for message in sent
        ]
        context["content_unchanged"] = bool(broadcast.approved_content_hash) and (
            services.broadcast_content_hash(broadcast) == broadcast.approved_content_hash
        )
    return context
