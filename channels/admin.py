"""Tenant admin for channels: subscriber counts, keyword checks, alarm state, exports."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from channels import nav as _nav  # noqa: F401 (registers the navigation entry)
from channels import selectors, services
from channels.models import AlarmStateChange, Channel
from core.admin_sites import tenant_site
from core.errors import ApplicationError
from core.http import request_meta, request_user
from subscribers.selectors import subscription_counts_by_channel
from subscribers.services import subscribers_export

ALARM_PERMISSION = "channels.change_alarm_state"
EXPORT_PERMISSION = "subscribers.export_subscribers"


class ChannelForm(forms.ModelForm):
    keywords_text = forms.CharField(
        label=_("keywords"),
        required=False,
        help_text=_(
            "Comma-separated single words, e.g. FEINSTAUB, FEINSTAUBALARM. Stored in upper case without accents; "
            "people may type them in any case."
        ),
    )

    class Meta:
        model = Channel
        fields = [
            "name", "slug", "description", "icon", "color", "is_public", "is_active", "requires_approval",
            "connections", "default_priority", "welcome_text_de", "welcome_text_en", "position", "is_alarm",
            "alarm_text_start", "alarm_text_update", "alarm_text_end",
        ]  # fmt: skip
        widgets = {"connections": forms.CheckboxSelectMultiple}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["keywords_text"].initial = ", ".join(self.instance.keywords)
        if "slug" in self.fields:  # absent for people who may only view channels
            self.fields["slug"].required = False

    def clean_keywords_text(self) -> list[str]:
        try:
            return services.channel_keywords_clean(self.cleaned_data["keywords_text"], exclude_pk=self.instance.pk)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.localized) from exc


class AlarmHistoryInline(admin.TabularInline):
    model = AlarmStateChange
    extra = 0
    fields = readonly_fields = ("at", "from_state", "to_state", "changed_by_label", "note")
    ordering = ["-at"]
    can_delete = False
    verbose_name_plural = _("alarm state history")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlarmStateChange]:
        return super().get_queryset(request).order_by("-at")


class ChannelChangeList(ChangeList):
    """Adds the subscriber counts of the channels on the page (one grouped query)."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        channels = list(self.result_list)
        counts = subscription_counts_by_channel([c.pk for c in channels])
        for channel in channels:
            channel.active_subscribers = counts[channel.pk].get("active", 0)
            channel.pending_subscribers = counts[channel.pk].get("pending", 0)
        self.result_list = channels


class AlarmStateForm(forms.Form):
    state = forms.ChoiceField(label=_("new state"), choices=Channel.AlarmState.choices, widget=forms.RadioSelect)
    note = forms.CharField(label=_("note (internal)"), required=False, max_length=300)


@admin.register(Channel, site=tenant_site)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm

    # what people who may only view channels see instead of the form field
    @admin.display(description=_("keywords"))
    def keywords_text(self, obj: Channel) -> str:
        return ", ".join(obj.keywords)

    list_display = [
        "name", "slug", "keyword_list", "is_public", "is_active", "alarm", "subscribers", "pending", "position",
    ]  # fmt: skip
    list_display_links = ["name"]
    list_filter = ["is_public", "is_active", "is_alarm"]
    search_fields = ["name", "slug"]
    readonly_fields = ["alarm_state", "alarm_state_changed_at", "status_links", "embed_code"]
    inlines = [AlarmHistoryInline]

    class Media:
        js = ["channels/admin_copy.js"]

    actions = [
        "alarm_announce", "alarm_activate", "alarm_all_clear", "alarm_deactivate", "export_csv", "export_xlsx",
    ]  # fmt: skip
    fieldsets = [
        (None, {"fields": ["name", "slug", "keywords_text", "description", "icon", "color", "position"]}),
        (_("Who sees it, how it is sent"), {
            "fields": ["is_public", "is_active", "requires_approval", "default_priority", "connections"]
        }),
        (_("Welcome text"), {"fields": ["welcome_text_de", "welcome_text_en"]}),
        (_("Alarm channel"), {
            "fields": ["is_alarm", "alarm_state", "alarm_state_changed_at", "status_links", "embed_code",
                       "alarm_text_start", "alarm_text_update", "alarm_text_end"],
        }),
    ]  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> QuerySet[Channel]:
        return selectors.channel_list_admin()

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ChannelChangeList

    @admin.display(description=_("keywords"))
    def keyword_list(self, obj: Channel) -> str:
        return ", ".join(obj.keywords) or "–"

    @admin.display(description=_("subscribers"))
    def subscribers(self, obj: Channel) -> int:
        return int(getattr(obj, "active_subscribers", 0))

    @admin.display(description=_("waiting for confirmation"))
    def pending(self, obj: Channel) -> int:
        return int(getattr(obj, "pending_subscribers", 0))

    @admin.display(description=_("alarm state"))
    def alarm(self, obj: Channel) -> str:
        if not obj.is_alarm:
            return "–"
        colour = selectors.STATE_COLOURS[Channel.AlarmState(obj.alarm_state)]
        return format_html('<span class="alarm-state alarm-{}">{}</span>', colour, obj.get_alarm_state_display())

    @admin.display(description=_("public status"))
    def status_links(self, obj: Channel) -> str:
        if not obj.pk or not obj.is_alarm:
            return "–"
        return format_html(
            '<a href="{}">JSON</a> · <a href="{}">{}</a> · <a href="{}">{}</a>',
            reverse("channels:status_json", args=[obj.slug]),
            reverse("channels:status_widget", args=[obj.slug]), _("widget"),
            reverse("tenant_admin:channels_channel_alarm", args=[obj.pk]), _("change state"),
        )  # fmt: skip

    @admin.display(description=_("embed code for your website"))
    def embed_code(self, obj: Channel) -> str:
        if not obj.pk or not obj.is_alarm:
            return "–"
        embed = selectors.channel_widget_embed(obj)
        hint = (
            _("Paste this into a page of your website: it shows the current alarm state and updates itself.")
            if embed.live
            else _("The widget shows only public, active alarm channels: until this channel is one, it stays empty.")
        )
        return format_html(
            '<textarea class="vLargeTextField embed-code" id="embed-code-{}" rows="3" cols="80" readonly'
            ' aria-label="{}">{}</textarea><br>'
            '<button type="button" class="button" data-copy="embed-code-{}" data-copied="{}">{}</button>'
            '<div class="help">{}</div>',
            obj.pk, _("embed code for your website"), embed.code, obj.pk, _("Copied"), _("Copy"), hint,
        )  # fmt: skip

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # subscriptions and the consent ledger point at channels: deactivate instead

    def save_model(self, request: HttpRequest, obj: Channel, form: Any, change: bool) -> None:
        data = form.cleaned_data
        fields = {name: data[name] for name in services.EDITABLE_FIELDS if name in data and name != "keywords"}
        fields["keywords"] = data.get("keywords_text", [])
        connections = list(data.get("connections") or [])
        actor = request_user(request)
        if change:
            # the form already copied its values onto `obj`; the service compares with the stored row
            stored = Channel.objects.get(pk=obj.pk)
            services.channel_update(
                channel=stored, actor=actor, meta=request_meta(request), connections=connections, **fields
            )
            obj.__dict__.update({k: v for k, v in stored.__dict__.items() if not k.startswith("_")})
        else:
            name = fields.pop("name")
            slug = fields.pop("slug", "") or ""
            keywords = fields.pop("keywords")
            created = services.channel_create(
                name=name, slug=slug, keywords=keywords, connections=connections, actor=actor, meta=request_meta(request),
                **fields,
            )  # fmt: skip
            obj.__dict__.update({k: v for k, v in created.__dict__.items() if not k.startswith("_")})
            obj._state.adding = False

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # connections were set by the service (no form.save_m2m); the history inline is read-only,
        # so saving its formset writes nothing but gives the change message what it needs
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    # ------------------------------------------------------------------ alarm state
    def get_urls(self) -> list[URLPattern]:
        return [
            path("<int:pk>/alarm/", self.admin_site.admin_view(self.alarm_view), name="channels_channel_alarm"),
            *super().get_urls(),
        ]

    def alarm_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm(ALARM_PERMISSION):
            raise PermissionDenied
        channel = get_object_or_404(Channel, pk=pk)
        form = AlarmStateForm(request.POST or None, initial={"state": channel.alarm_state})
        if request.method == "POST" and form.is_valid():
            try:
                services.channel_set_alarm_state(
                    channel=channel, state=form.cleaned_data["state"], note=form.cleaned_data["note"],
                    actor=request_user(request), meta=request_meta(request),
                )  # fmt: skip
            except ApplicationError as exc:
                messages.error(request, exc.localized)
            else:
                messages.success(
                    request, _("%(channel)s is now: %(state)s.")
                    % {"channel": channel.name, "state": channel.get_alarm_state_display()},
                )  # fmt: skip
                return HttpResponseRedirect(reverse("tenant_admin:channels_channel_alarm", args=[pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Alarm state: %(channel)s") % {"channel": channel.name},
            "opts": self.model._meta,
            "channel": channel,
            "form": form,
            "history": selectors.alarm_history(channel),
            "colour": selectors.STATE_COLOURS[Channel.AlarmState(channel.alarm_state)],
        }
        return TemplateResponse(request, "channels/admin/alarm.html", context)

    def _set_state(self, request: HttpRequest, queryset: QuerySet[Channel], state: str) -> None:
        if not request.user.has_perm(ALARM_PERMISSION):
            raise PermissionDenied
        for channel in queryset:
            try:
                services.channel_set_alarm_state(
                    channel=channel, state=state, actor=request_user(request), meta=request_meta(request)
                )
            except ApplicationError as exc:
                messages.error(request, exc.localized)
            else:
                messages.success(
                    request, _("%(channel)s is now: %(state)s.")
                    % {"channel": channel.name, "state": Channel.AlarmState(state).label},
                )  # fmt: skip

    @admin.action(description=_("Alarm: announce"))
    def alarm_announce(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        self._set_state(request, queryset, Channel.AlarmState.ANNOUNCED)

    @admin.action(description=_("Alarm: active"))
    def alarm_activate(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        self._set_state(request, queryset, Channel.AlarmState.ACTIVE)

    @admin.action(description=_("Alarm: all clear"))
    def alarm_all_clear(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        self._set_state(request, queryset, Channel.AlarmState.ALL_CLEAR)

    @admin.action(description=_("Alarm: inactive"))
    def alarm_deactivate(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        self._set_state(request, queryset, Channel.AlarmState.INACTIVE)

    # ------------------------------------------------------------------ export
    def _export(self, request: HttpRequest, queryset: QuerySet[Channel], file_format: str) -> HttpResponseBase | None:
        if not request.user.has_perm(EXPORT_PERMISSION):
            raise PermissionDenied
        channels = list(queryset[:2])
        if len(channels) != 1:
            messages.warning(request, _("Choose exactly one channel to export its subscribers."))
            return None
        export = subscribers_export(
            channel=channels[0], file_format=file_format, actor=request_user(request), meta=request_meta(request)
        )
        response = StreamingHttpResponse(export.chunks, content_type=export.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        return response

    @admin.action(description=_("Export subscribers (CSV)"))
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Channel]) -> HttpResponseBase | None:
        return self._export(request, queryset, "csv")

    @admin.action(description=_("Export subscribers (XLSX)"))
    def export_xlsx(self, request: HttpRequest, queryset: QuerySet[Channel]) -> HttpResponseBase | None:
        return self._export(request, queryset, "xlsx")
