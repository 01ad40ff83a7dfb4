"""Tenant admin of districts and posters (QR codes that subscribe to a channel)."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from channels.models import Channel
from core.admin_sites import tenant_site
from core.errors import ApplicationError
from core.http import request_user
from subscribers import services
from subscribers.models import (
    District,
    Poster,
    Source,
    Subscriber,
    Subscription,
)


class DistrictForm(forms.ModelForm):
    aliases_text = forms.CharField(
        label=_("also known as"), required=False,
        help_text=_("Comma-separated other names people may type after BEZIRK, e.g. Cannstatt."),
    )  # fmt: skip

    class Meta:
        model = District
        fields = ["name", "slug", "position"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "slug" in self.fields:  # absent for people who may only view districts
            self.fields["slug"].required = False
        if self.instance.pk and "aliases_text" in self.fields:
            self.fields["aliases_text"].initial = ", ".join(self.instance.aliases)


@admin.register(District, site=tenant_site)
class DistrictAdmin(admin.ModelAdmin):
    form = DistrictForm

    # what people who may only view districts see instead of the form field
    @admin.display(description=_("also known as"))
    def aliases_text(self, obj: District) -> str:
        return ", ".join(obj.aliases)

    list_display = ["name", "slug", "alias_list", "position", "people"]
    search_fields = ["name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[District]:
        people = (
            Subscriber.objects.filter(district=OuterRef("pk"), status=Subscriber.Status.ACTIVE)
            .order_by().values("district").annotate(n=Count("pk")).values("n")
        )  # fmt: skip
        return (
            super()
            .get_queryset(request)
            .annotate(people_count=Coalesce(Subquery(people, output_field=IntegerField()), 0))
        )

    @admin.display(description=_("also known as"))
    def alias_list(self, obj: District) -> str:
        return ", ".join(obj.aliases) or "–"

    @admin.display(description=_("people"))
    def people(self, obj: District) -> int:
        return int(getattr(obj, "people_count", 0))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # people and broadcasts target districts

    def save_model(self, request: HttpRequest, obj: District, form: Any, change: bool) -> None:
        data = form.cleaned_data
        try:
            if change:
                services.district_update(
                    district=District.objects.get(pk=obj.pk), name=data["name"], slug=data.get("slug") or "",
                    aliases=data["aliases_text"], position=data["position"], actor=request_user(request),
                )  # fmt: skip
            else:
                created = services.district_create(
                    name=data["name"], slug=data.get("slug") or "", aliases=data["aliases_text"],
                    position=data["position"], actor=request_user(request),
                )  # fmt: skip
                obj.pk = created.pk
                obj._state.adding = False
        except ApplicationError as exc:
            messages.error(request, exc.localized)
            raise _SaveRefusedError from exc

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:  # fmt: skip
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _SaveRefusedError:
            return HttpResponseRedirect(request.get_full_path())


class _SaveRefusedError(Exception):
    """A service refused the save; the admin shows its message."""


class PosterForm(forms.ModelForm):
    provider = forms.ChoiceField(
        label=_("opens"),
        choices=[("whatsapp", "WhatsApp"), ("telegram", "Telegram"), ("sms", "SMS"), ("web", _("subscribe page"))],
        help_text=_("Where the QR code leads. “subscribe page” works for every channel, also with e-mail only."),
    )

    class Meta:
        model = Poster
        fields = ["channel", "provider", "label"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The change page shows a poster read-only: the admin builds this form without fields.
        if "channel" in self.fields:
            cast(forms.ModelChoiceField, self.fields["channel"]).queryset = Channel.objects.filter(
                is_public=True, is_active=True
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        channel, provider = data.get("channel"), data.get("provider")
        if channel is not None and provider:
            try:
                services.poster_target_check(channel=channel, provider=provider)
            except ApplicationError as exc:
                self.add_error("provider", exc.localized)
        return data


@admin.register(Poster, site=tenant_site)
class PosterAdmin(admin.ModelAdmin):
    form = PosterForm
    list_display = ["code", "channel", "provider", "label", "signups", "created_at", "files"]
    list_filter = ["channel", "provider"]
    list_select_related = ["channel"]
    search_fields = ["code", "label"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Poster]:
        signups = (
            Subscription.objects.filter(source=Source.QR, source_detail=OuterRef("code"))
            .order_by().values("source_detail").annotate(n=Count("pk")).values("n")
        )  # fmt: skip
        return (
            super()
            .get_queryset(request)
            .annotate(signup_count=Coalesce(Subquery(signups, output_field=IntegerField()), 0))
        )

    @admin.display(description=_("sign-ups"))
    def signups(self, obj: Poster) -> int:
        return int(getattr(obj, "signup_count", 0))

    @admin.display(description=_("print"))
    def files(self, obj: Poster) -> str:
        suffix = f"?poster={obj.code}&download=1"
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">{}</a> · <a href="{}">SVG</a> · <a href="{}">PNG</a>',
            reverse("subscribers:poster", args=[obj.code]), _("A4 poster"),
            reverse("subscribers:qr_svg", args=[obj.channel.slug, obj.provider]) + suffix,
            reverse("subscribers:qr_png", args=[obj.channel.slug, obj.provider]) + suffix,
        )  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["code", "channel", "provider", "label", "files"] if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (
            ["code", "channel", "provider", "label", "files"] if obj is not None else ["channel", "provider", "label"]
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Poster, form: Any, change: bool) -> None:
        try:
            created = services.poster_create(
                channel=form.cleaned_data["channel"], provider=form.cleaned_data["provider"],
                label=form.cleaned_data["label"], actor=request_user(request),
            )  # fmt: skip
        except ApplicationError as exc:  # e.g. the connection was paused since the form was checked
            messages.error(request, exc.localized)
            raise _SaveRefusedError from exc
        obj.__dict__.update({k: v for k, v in created.__dict__.items() if not k.startswith("_")})
        obj._state.adding = False

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:  # fmt: skip
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _SaveRefusedError:
            return HttpResponseRedirect(request.get_full_path())
