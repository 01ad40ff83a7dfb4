"""Tenant admin of citizen texts: a tenant's own wording of keyword replies and e-mails, for
every channel or for one (TextOverride; the lookup: subscribers.texts). Writes go through
subscribers.services."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from core.admin_sites import tenant_site
from core.errors import ApplicationError
from core.http import request_meta, request_user
from subscribers import services, texts
from subscribers.models import TextOverride


def _standard(key: str, language: str) -> str:
    return texts.TEXTS[texts.reply_language(language)].get(key, "")


def _key_label(key: str, length: int = 70) -> str:
    """Which text a key is, for people: the start of its standard wording in the reader's language
    (the key itself is a code)."""
    standard = " ".join(_standard(key, get_language() or texts.DEFAULT_LANGUAGE).split())
    if len(standard) <= length:
        return standard
    return standard[:length].rsplit(" ", 1)[0] + " …"


class TextKeyFilter(admin.SimpleListFilter):
    title = _("text")
    parameter_name = "key"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, _key_label(key, 50)) for key in texts.OVERRIDABLE_KEYS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[TextOverride]) -> QuerySet[TextOverride]:
        value = self.value()
        return queryset.filter(key=value) if value else queryset


class TextOverrideForm(forms.ModelForm):
    key = forms.ChoiceField(label=_("text"), choices=())

    class Meta:
        model = TextOverride
        fields = ["key", "language", "channel", "text"]
        widgets = {"text": forms.Textarea(attrs={"rows": 8})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the standard wording in the reader's language tells which text a key is
        cast(forms.ChoiceField, self.fields["key"]).choices = [(key, _key_label(key)) for key in texts.OVERRIDABLE_KEYS]
        self.fields["text"].help_text = _(
            "Placeholders in curly braces, e.g. {channel}, are filled in when the text is sent; use only those of "
            "the standard text."
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if all(data.get(name) for name in ("key", "language", "text")):
            try:
                services.text_override_check(key=data["key"], language=data["language"], text=data["text"])
            except ApplicationError as exc:
                self.add_error("text", exc.localized)
        return data


@admin.register(TextOverride, site=tenant_site)
class TextOverrideAdmin(admin.ModelAdmin):
    form = TextOverrideForm
    list_display = ["which_text", "language", "for_channel", "preview"]
    list_filter = ["language", TextKeyFilter]
    list_select_related = ["channel"]
    readonly_fields = ["standard_text"]
    fields = ["key", "language", "channel", "text", "standard_text"]

    @admin.display(description=_("text"), ordering="key")
    def which_text(self, obj: TextOverride) -> str:
        return _key_label(obj.key, 50)

    @admin.display(description=_("channel"))
    def for_channel(self, obj: TextOverride) -> str:
        return obj.channel.name if obj.channel is not None else str(_("every channel"))

    @admin.display(description=_("wording"))
    def preview(self, obj: TextOverride) -> str:
        return obj.text if len(obj.text) <= 80 else obj.text[:80] + "…"

    @admin.display(description=_("standard text"))
    def standard_text(self, obj: TextOverride) -> str:
        if not obj.pk:
            return "–"
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', _standard(obj.key, obj.language))

    def save_model(self, request: HttpRequest, obj: TextOverride, form: Any, change: bool) -> None:
        data = form.cleaned_data
        saved = services.text_override_save(
            key=data["key"], language=data["language"], text=data["text"], channel=data.get("channel"),
            override=TextOverride.objects.get(pk=obj.pk) if change else None, actor=request_user(request),
            meta=request_meta(request),
        )  # fmt: skip
        obj.pk, obj._state.adding = saved.pk, False

    def delete_model(self, request: HttpRequest, obj: TextOverride) -> None:
        services.text_override_delete(override=obj, actor=request_user(request), meta=request_meta(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[TextOverride]) -> None:
        for override in queryset:
            self.delete_model(request, override)
