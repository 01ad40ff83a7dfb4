"""Tenant admin for subscribers: the people list (fast with 100,000 rows), the consent ledger
(read-only), consent texts, districts, posters, imports, and the GDPR actions. Every write goes
through subscribers.services."""

from __future__ import annotations

import json
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from channels.models import Channel
from core.admin_sites import ReadOnlyAdminMixin, admin_object_or_404, tenant_site
from core.errors import ApplicationError
from core.http import request_meta, request_user
from messengers.adapters.base import Provider
from messengers.models import Contact
from subscribers import links, selectors, services
from subscribers.forms import ImportForm
from subscribers.models import (
    ConsentEvent,
    ConsentText,
    District,
    Poster,
    Source,
    Subscriber,
    SubscriberImport,
    Subscription,
)

GDPR_PERMISSION = "subscribers.gdpr_subscriber"
IMPORT_PERMISSION = "subscribers.import_subscribers"
ERRORS_SHOWN = 200


# --------------------------------------------------------------------------------------------
# Subscribers
# --------------------------------------------------------------------------------------------
class ChannelFilter(admin.SimpleListFilter):
    title = _("channel (active subscription)")
    parameter_name = "channel"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(pk), name) for pk, name in Channel.objects.order_by("position", "name").values_list("pk", "name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> QuerySet[Subscriber]:
        value = self.value() or ""
        if not (value.isascii() and value.isdigit()):  # not "²"
            return queryset
        active = Subscription.objects.filter(channel_id=int(value), status=Subscription.Status.ACTIVE)
        return queryset.filter(pk__in=active.values("subscriber_id"))


class MessengerFilter(admin.SimpleListFilter):
    title = _("messenger")
    parameter_name = "messenger"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(p.value, selectors.PROVIDER_LABELS[p]) for p in Provider]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> QuerySet[Subscriber]:
        value = self.value()
        if value not in Provider.__members__.values():
            return queryset
        contacts = Contact.objects.filter(connection__provider=value, subscriber__isnull=False)
        return queryset.filter(pk__in=contacts.values("subscriber_id"))


class SourceFilter(admin.SimpleListFilter):
    title = _("source")
    parameter_name = "source"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(Source.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> QuerySet[Subscriber]:
        value = self.value()
        if value not in Source.values:
            return queryset
        return queryset.filter(pk__in=Subscription.objects.filter(source=value).values("subscriber_id"))


class SubscriberForm(forms.ModelForm):
    tags_text = forms.CharField(label=_("interests"), required=False, help_text=_("Comma-separated."))

    class Meta:
        model = Subscriber
        fields = ["name", "language", "district"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["tags_text"].initial = ", ".join(self.instance.tags)


class SubscriptionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Subscription
    extra = 0
    fields = readonly_fields = (
        "channel", "status", "source", "source_detail", "subscribed_at", "confirmed_at", "unsubscribed_at",
    )  # fmt: skip
    verbose_name_plural = _("subscriptions")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscription]:
        return super().get_queryset(request).select_related("channel")


class ConsentInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ConsentEvent
    extra = 0
    fields = readonly_fields = (
        "at", "kind", "channel", "source", "source_detail", "evidence", "explicit", "consent_text",
    )  # fmt: skip
    ordering = ["at", "pk"]
    verbose_name_plural = _("consent ledger")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConsentEvent]:
        return super().get_queryset(request).select_related("channel", "consent_text")


@admin.register(Subscriber, site=tenant_site)
class SubscriberAdmin(admin.ModelAdmin):
    form = SubscriberForm
    list_display = ["display", "messengers", "channel_list", "district", "language", "status", "created_at"]
    list_filter = [ChannelFilter, "status", MessengerFilter, "district", "language", SourceFilter]
    list_select_related = ["district"]
    search_fields = ["name"]  # replaced by get_search_results; keeps the search box
    search_help_text = _("A name (or part of it), a phone number, an e-mail address, a Telegram chat id, or #id.")
    show_full_result_count = False
    list_per_page = 50  # rendering rows, not the database, is what costs time here
    ordering = ["-pk"]
    inlines = [SubscriptionInline, ConsentInline]
    readonly_fields = ["status", "external_ref", "created_at", "erased_at", "contact_list", "personal_links"]
    actions = ["export_personal_data", "erase"]
    fieldsets = [
        (None, {"fields": ["name", "language", "district", "tags_text"]}),
        (_("Reachable on"), {"fields": ["contact_list", "personal_links"]}),
        (_("Record"), {"fields": ["status", "external_ref", "created_at", "erased_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscriber]:
        return selectors.subscriber_list_admin()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Subscriber], search_term: str
    ) -> tuple[QuerySet[Subscriber], bool]:
        return selectors.subscriber_search(queryset, search_term), False

    @admin.display(description=_("person"), ordering="pk")
    def display(self, obj: Subscriber) -> str:
        return obj.name or f"#{obj.pk}"

    @admin.display(description=_("messengers"))
    def messengers(self, obj: Subscriber) -> str:
        return format_html_join(
            ", ", "{} {}",
            ((selectors.PROVIDER_LABELS.get(Provider(c.connection.provider), c.connection.provider), c.address)
             for c in obj.contacts.all()),
        ) or "–"  # fmt: skip

    @admin.display(description=_("channels"))
    def channel_list(self, obj: Subscriber) -> str:
        return ", ".join(s.channel.name for s in getattr(obj, "active_subscriptions", [])) or "–"

    @admin.display(description=_("contacts"))
    def contact_list(self, obj: Subscriber) -> str:
        return format_html_join(
            "", "<div>{}: {} ({})</div>",
            ((selectors.PROVIDER_LABELS.get(Provider(c.connection.provider), c.connection.provider), c.address,
              c.get_status_display()) for c in obj.contacts.all()),
        ) or "–"  # fmt: skip

    @admin.display(description=_("personal links"))
    def personal_links(self, obj: Subscriber) -> str:
        if obj.status != Subscriber.Status.ACTIVE:
            return "–"
        return format_html(
            '<a href="{}" rel="noopener">{}</a> · <a href="{}" rel="noopener">{}</a>',
            links.preferences_url(obj), _("preference page"), links.unsubscribe_url(obj), _("unsubscribe page"),
        )  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # people subscribe themselves (keyword, form) or come by import

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # erase instead: it keeps the counts and records the withdrawal

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.status == Subscriber.Status.ERASED:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Subscriber, form: Any, change: bool) -> None:
        stored = Subscriber.objects.get(pk=obj.pk)
        data = form.cleaned_data
        services.subscriber_update(
            subscriber=stored, name=data["name"], language=data["language"], district=data["district"],
            tags=data.get("tags_text", "").split(","), actor=request_user(request), meta=request_meta(request),
        )  # fmt: skip

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # the inlines are read-only: saving their formsets writes nothing (the change message needs it)
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    @admin.action(description=_("Export personal data (JSON, GDPR)"))
    def export_personal_data(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> HttpResponse | None:
        if not request.user.has_perm(GDPR_PERMISSION):
            raise PermissionDenied
        people = list(queryset[:2])
        if len(people) != 1:
            messages.warning(request, _("Choose exactly one person to export their data."))
            return None
        data = services.subscriber_export_personal_data(
            subscriber=people[0], actor=request_user(request), meta=request_meta(request)
        )
        response = HttpResponse(
            json.dumps(data, ensure_ascii=False, indent=2), content_type="application/json; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="personal-data-{people[0].pk}.json"'
        return response

    @admin.action(description=_("Erase personal data (GDPR)"))
    def erase(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> HttpResponse | None:
        if not request.user.has_perm(GDPR_PERMISSION):
            raise PermissionDenied
        people = list(queryset.filter(status=Subscriber.Status.ACTIVE).order_by("pk")[:101])
        if len(people) > 100:
            messages.error(request, _("Erase at most 100 people at once."))
            return None
        if request.POST.get("confirm") == "yes":
            for person in people:
                services.subscriber_erase(
                    subscriber=person, source=Source.ADMIN, actor=request_user(request), meta=request_meta(request)
                )
            messages.success(request, _("Erased the data of %(count)d people.") % {"count": len(people)})
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Erase personal data?"),
            "opts": self.model._meta,
            "people": people,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "subscribers/admin/erase_confirm.html", context)


# --------------------------------------------------------------------------------------------
# Consent ledger and texts
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Districts and posters
# --------------------------------------------------------------------------------------------
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
        self.fields["slug"].required = False
        if self.instance.pk:
            self.fields["aliases_text"].initial = ", ".join(self.instance.aliases)


@admin.register(District, site=tenant_site)
class DistrictAdmin(admin.ModelAdmin):
    form = DistrictForm
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
            messages.error(request, exc.message)
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
                self.add_error("provider", exc.message)
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
            messages.error(request, exc.message)
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


# --------------------------------------------------------------------------------------------
# Imports
# --------------------------------------------------------------------------------------------
@admin.register(SubscriberImport, site=tenant_site)
class SubscriberImportAdmin(admin.ModelAdmin):
    list_display = [
        "created_at", "filename", "status", "progress", "subscribers_created", "subscribers_matched",
        "subscriptions_created", "rows_rejected", "created_by_label",
    ]  # fmt: skip
    list_filter = ["status"]
    actions = ["restart"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SubscriberImport]:
        return super().get_queryset(request).defer("data")

    @admin.display(description=_("progress"))
    def progress(self, obj: SubscriberImport) -> str:
        return f"{obj.progress_percent} %"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(IMPORT_PERMISSION))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(
            request.user.has_perm(IMPORT_PERMISSION) or request.user.has_perm("subscribers.view_subscriberimport")
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/progress.json", view(self.progress_view), name="subscribers_subscriberimport_progress"),
            path("<int:pk>/errors.csv", view(self.errors_view), name="subscribers_subscriberimport_errors"),
            *super().get_urls(),
        ]

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        party = selectors.is_party_tenant()
        form = ImportForm(request.POST or None, request.FILES or None, party=party)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                job = services.subscriber_import_create(
                    filename=upload.name, data=upload.read(), default_channels=list(form.cleaned_data["channels"]),
                    consent_text=form.cleaned_data["consent_text"],
                    explicit_consent=bool(form.cleaned_data.get("explicit_consent")),
                    actor=request_user(request), meta=request_meta(request),
                )  # fmt: skip
            except ApplicationError as exc:
                form.add_error("file", exc.message)
            else:
                return HttpResponseRedirect(reverse("tenant_admin:subscribers_subscriberimport_change", args=[job.pk]))
        context = {
            **self.admin_site.each_context(request), "title": _("Import subscribers"), "opts": self.model._meta,
            "form": form, "party": party,
        }  # fmt: skip
        return TemplateResponse(request, "subscribers/admin/import_form.html", context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = cast(
            SubscriberImport, admin_object_or_404(self, request, object_id, SubscriberImport.objects.defer("data"))
        )
        context = {
            **self.admin_site.each_context(request), "title": str(job), "opts": self.model._meta, "job": job,
            "errors": job.errors[:ERRORS_SHOWN], "more_errors": max(0, len(job.errors) - ERRORS_SHOWN),
            "running": job.status in (SubscriberImport.Status.QUEUED, SubscriberImport.Status.RUNNING),
        }  # fmt: skip
        return TemplateResponse(request, "subscribers/admin/import_detail.html", context)

    def progress_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = get_object_or_404(SubscriberImport.objects.defer("data", "errors"), pk=pk)
        return JsonResponse(
            {
                "status": job.status, "status_label": job.get_status_display(), "processed": job.processed_rows,
                "total": job.total_rows, "percent": job.progress_percent, "created": job.subscribers_created,
                "matched": job.subscribers_matched, "subscriptions": job.subscriptions_created,
                "rejected": job.rows_rejected, "failure": job.failure,
                "finished": job.status in (SubscriberImport.Status.DONE, SubscriberImport.Status.FAILED),
            }
        )  # fmt: skip

    def errors_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = get_object_or_404(SubscriberImport.objects.defer("data"), pk=pk)
        report = services.subscriber_import_errors_csv(job=job)
        response = HttpResponse(report, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
        return response

    @admin.action(description=_("Resume a stuck import (safe: nothing is imported twice)"))
    def restart(self, request: HttpRequest, queryset: QuerySet[SubscriberImport]) -> None:
        if not self.has_add_permission(request):
            raise PermissionDenied
        for job in queryset.defer("data"):
            if services.subscriber_import_resume(job=job, actor=request_user(request)):
                messages.success(request, _("%(file)s: queued again.") % {"file": job.filename})
            else:
                messages.warning(
                    request,
                    _("%(file)s has finished; its file was deleted for privacy. Upload it again to re-run it "
                      "(that is safe).") % {"file": job.filename},
                )  # fmt: skip
