"""Tenant admin of the consent ledger (read-only) and the consent texts."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from core.admin_sites import ReadOnlyAdminMixin, tenant_site
from core.http import request_user
from subscribers import selectors, services
from subscribers.models import (
    ConsentEvent,
    ConsentText,
)


@admin.register(ConsentEvent, site=tenant_site)
class ConsentEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "at",
        "kind",
        "channel",
        "source",
        "source_detail",
        "person",
        "explicit",
        "text_version",
        "evidence",
    ]
    list_filter = ["kind", "source", "explicit", "channel"]
    search_fields = ["source_detail", "evidence"]
    show_full_result_count = False
    list_per_page = 100

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConsentEvent]:
        return selectors.consent_events_admin()

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("subscribers.view_consentevent"))

    @admin.display(description=_("person"))
    def person(self, obj: ConsentEvent) -> str:
        return f"#{obj.subscriber_id}" if obj.subscriber_id else "–"

    @admin.display(description=_("text version"))
    def text_version(self, obj: ConsentEvent) -> str:
        return f"{obj.consent_text.language} v{obj.consent_text.version}" if obj.consent_text else "–"


class ConsentTextForm(forms.ModelForm):
    class Meta:
        model = ConsentText
        fields = ["channel", "language", "text"]


@admin.register(ConsentText, site=tenant_site)
class ConsentTextAdmin(admin.ModelAdmin):
    """Texts are versioned, never edited: the ledger points at the version a person saw."""

    form = ConsentTextForm
    list_display = ["__str__", "channel", "language", "version", "created_at", "preview"]
    list_filter = ["language", "channel"]
    list_select_related = ["channel"]

    @admin.display(description=_("text"))
    def preview(self, obj: ConsentText) -> str:
        return obj.text[:120]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ConsentText, form: Any, change: bool) -> None:
        created = services.consent_text_create(
            text=form.cleaned_data["text"], language=form.cleaned_data["language"],
            channel=form.cleaned_data["channel"], actor=request_user(request),
        )  # fmt: skip
        obj.__dict__.update({k: v for k, v in created.__dict__.items() if not k.startswith("_")})
        obj._state.adding = False
