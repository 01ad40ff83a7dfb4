"""Tenant admin of the people list (fast with 100,000 rows: filters by channel, messenger and
source), a person's page, and the GDPR actions (export, erase), which go through
subscribers.services."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from channels.models import Channel
from core.admin_sites import ReadOnlyAdminMixin, tenant_site
from core.http import request_meta, request_user
from messengers.adapters.base import Provider
from messengers.models import Contact
from subscribers import links, selectors, services
from subscribers.models import (
    ConsentEvent,
    Source,
    Subscriber,
    Subscription,
)

GDPR_PERMISSION = "subscribers.gdpr_subscriber"


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

    # what people who may only view subscribers see instead of the form field
    @admin.display(description=_("interests"))
    def tags_text(self, obj: Subscriber) -> str:
        return ", ".join(obj.tags)

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
