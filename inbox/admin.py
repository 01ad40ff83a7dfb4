"""The inbox page in the tenant admin, and the inbox's small tables (departments, canned replies)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import pgettext_lazy

from core.admin_sites import AdminPage, NavEntry, tenant_site
from core.errors import ApplicationError
from core.http import request_meta, request_user
from inbox import selectors, services, views
from inbox.hours import HoursError, parse_holidays, parse_hours
from inbox.models import CannedReply, Department, InboxSettings

for route, view, name in (
    ("inbox/", views.inbox_page, "inbox"),
    ("inbox/changes.json", views.inbox_changes, "inbox_changes"),
    ("inbox/groups/", views.inbox_groups, "inbox_groups"),
    ("inbox/groups/reply/", views.inbox_group_reply, "inbox_group_reply"),
    ("inbox/<int:pk>/", views.inbox_page, "inbox_conversation"),
    ("inbox/<int:pk>/<slug:action>/", views.inbox_act, "inbox_act"),
):
    tenant_site.add_page(
        AdminPage(route=route, view=view, name=name, permission=views.PERMISSION, context_flag="can_use_inbox")
    )
tenant_site.add_page(
    AdminPage(
        route="inbox/media/<int:pk>/",
        view=views.inbox_media,
        name="inbox_media",
        permission=views.PERMISSION,
        context_flag="can_use_inbox",
        cacheable=True,
    )
)


def _unanswered(request: HttpRequest) -> int:
    return selectors.unanswered_count()


def _inbox_landing(request: HttpRequest) -> str | None:
    """Inbox agents (the inbox is their work, composing is not) land on the inbox."""
    user = request.user
    if user.has_perm(views.PERMISSION) and not user.has_perm("broadcasts.change_broadcast"):
        return reverse("tenant_admin:inbox")
    return None


tenant_site.add_nav(
    NavEntry(
        key="inbox",
        label=pgettext_lazy("admin navigation", "Inbox"),
        url="inbox",
        permissions=(views.PERMISSION,),
        icon="inbox",
        badge=_unanswered,
        badge_label=pgettext_lazy("admin navigation", "unanswered"),
        order=40,
    )
)
tenant_site.add_landing(_inbox_landing)


@admin.register(Department, site=tenant_site)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ("name", "email")
    search_fields = ("name", "email")


@admin.register(CannedReply, site=tenant_site)
class CannedReplyAdmin(admin.ModelAdmin):
    list_display = ("title", "body")
    search_fields = ("title", "body")


class InboxSettingsForm(forms.ModelForm):
    class Meta:
        model = InboxSettings
        fields = [
            "office_hours",
            "holidays",
            "auto_reply_de",
            "auto_reply_en",
            "send_department_answers",
            "answer_window_hours",
        ]
        widgets = {"office_hours": forms.Textarea(attrs={"rows": 5}), "holidays": forms.Textarea(attrs={"rows": 5})}

    def clean_office_hours(self) -> str:
        value = str(self.cleaned_data.get("office_hours", ""))
        try:
            parse_hours(value)
        except HoursError as exc:
            raise forms.ValidationError(exc.message) from None
        return value

    def clean_holidays(self) -> str:
        value = str(self.cleaned_data.get("holidays", ""))
        try:
            parse_holidays(value)
        except HoursError as exc:
            raise forms.ValidationError(exc.message) from None
        return value


@admin.register(InboxSettings, site=tenant_site)
class InboxSettingsAdmin(admin.ModelAdmin):
    """One row per tenant: the list goes straight to it."""

    form = InboxSettingsForm

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        row = services.inbox_settings_ensure()
        return HttpResponseRedirect(reverse("tenant_admin:inbox_inboxsettings_change", args=[row.pk]))

    def save_model(self, request: HttpRequest, obj: InboxSettings, form: Any, change: bool) -> None:
        try:
            services.inbox_settings_update(
                actor=request_user(request),
                meta=request_meta(request),
                **{name: form.cleaned_data[name] for name in form.changed_data},
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
