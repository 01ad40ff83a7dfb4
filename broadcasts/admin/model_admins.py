"""The tenant admin's model admins for broadcasts: compose with a live phone preview, the send
plan, the approval workflow buttons (broadcasts.admin.workflow) and live progress while
sending; deliveries read-only. Every write goes through broadcasts.services."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.defaultfilters import linebreaksbr
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from accounts.models import AuditEvent
from analytics.export import export_response, table_from_chart
from analytics.export_tables import broadcast_tables
from analytics.models import BroadcastStats
from analytics.selectors_broadcasts import broadcast_stats_of, figures_of, settled_progress, timeline_chart
from broadcasts import selectors, services
from broadcasts.admin.compose import compose_context, template_choices
from broadcasts.admin.forms import BUTTONS, BroadcastForm, template_param_slots
from broadcasts.admin.workflow import WorkflowViewsMixin, workflow_context
from broadcasts.models import Broadcast, Delivery
from core.admin_sites import ReadOnlyAdminMixin, admin_object_or_404, tenant_site
from core.errors import ApplicationError
from core.http import request_meta, request_user
from subscribers.models import Language

# Who sees a broadcast's figures (analytics/roles.py: not inbox agents).
FIGURES_PERMISSION = "analytics.view_broadcaststats"


def _preview_content(broadcast: Broadcast) -> dict[str, Any]:
    """The stored content, for the preview (the only source once the form is read-only)."""
    return {
        "variants": {v.language: {"body": v.body, "subject": v.subject} for v in broadcast.variants.all()},
        "buttons": list(broadcast.buttons or []),
        "media_url": broadcast.media.url if broadcast.media else "",
        "media_kind": broadcast.media_kind,
        "wa_template_name": broadcast.wa_template_name,
        "wa_template_params": list(broadcast.wa_template_params),
        "wa_template_text": selectors.broadcast_template_text(broadcast),
    }


class ReviewFilter(admin.SimpleListFilter):
    title = _("review")
    parameter_name = "review"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("needed", _("Sent without approval, not reviewed"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Broadcast]) -> QuerySet[Broadcast]:
        if self.value() == "needed":
            return queryset.filter(needs_review=True)
        return queryset


class ToApproveFilter(admin.SimpleListFilter):
    """ "To approve: by me", the navigation's "To approve" entry (?to_approve=me): what waits for
    this user's approval, four-eyes aware (broadcasts.selectors)."""

    title = pgettext_lazy("admin navigation", "to approve")
    parameter_name = "to_approve"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        if not selectors.user_can_approve(request.user):
            self.template = "admin/filter_hidden.html"  # nothing to offer, but the link still filters
            return []
        return [("me", pgettext_lazy("admin navigation", "by me"))]

    def has_output(self) -> bool:
        return True  # applied even when hidden: ?to_approve=me lists nothing for non-approvers

    def queryset(self, request: HttpRequest, queryset: QuerySet[Broadcast]) -> QuerySet[Broadcast]:
        if self.value() == "me":
            awaiting = selectors.broadcast_list_awaiting_approval_by(request.user)
            return queryset.filter(pk__in=awaiting.order_by().values("pk"))
        return queryset


@admin.register(Broadcast, site=tenant_site)
class BroadcastAdmin(WorkflowViewsMixin, admin.ModelAdmin):
    form = BroadcastForm
    list_display = ["title", "status", "priority", "author", "scheduled_at", "recipients_total", "needs_review"]
    list_filter = ["status", "priority", ReviewFilter, ToApproveFilter]
    search_fields = ["title", "variants__body"]
    list_select_related = ["author"]
    change_form_template = "broadcasts/admin/change_form.html"
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": ["title", "priority", "channels"]}),
        (_("Text"), {"fields": ["body_de", "body_en", "body_ls", "subject"]}),
        (
            _("Image or video, buttons"),
            {"fields": ["media", *[f"button_{i}_{p}" for i in range(BUTTONS) for p in ("title", "url")]]},
        ),
        (_("Who gets it"), {"fields": ["districts", "languages", "tags_text"]}),
        (
            _("WhatsApp template (outside the 24-hour window)"),
            {"fields": ["wa_template"]},
        ),
        (_("When"), {"fields": ["scheduled_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Broadcast]:
        return super().get_queryset(request).defer("approved_content_hash", "rejection_comment", "review_comment")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # cancel instead; the audit trail and deliveries stay

    def has_change_permission(self, request: HttpRequest, obj: Broadcast | None = None) -> bool:
        if obj is not None and obj.status not in services.EDITABLE:
            return False  # sending or done: the page shows what went out, with no Save button
        return super().has_change_permission(request, obj)

    READ_ONLY_FIELDS = ["title", "priority", "status_display", "texts_display", "audience_display"]

    def get_readonly_fields(self, request: HttpRequest, obj: Broadcast | None = None) -> Any:
        if obj is not None and obj.status not in services.EDITABLE:
            return self.READ_ONLY_FIELDS
        return []

    def get_fieldsets(self, request: HttpRequest, obj: Broadcast | None = None) -> Any:
        if obj is not None and obj.status not in services.EDITABLE:
            return [(None, {"fields": self.READ_ONLY_FIELDS})]
        slots = template_param_slots(template_choices(request), obj.wa_template_params if obj else [])
        params = [f"wa_param_{i}" for i in range(1, slots + 1)]
        return [
            (
                name,
                {**options, "fields": [*options["fields"], *params]} if "wa_template" in options["fields"] else options,
            )
            for name, options in self.fieldsets
        ]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is not None and obj.status not in services.EDITABLE:
            # sending or done: nothing to edit, the page shows status, plan and progress
            kwargs["fields"] = []
            kwargs["form"] = forms.ModelForm
            return super().get_form(request, obj, change, **kwargs)
        kwargs["fields"] = None
        # the approved templates, bound to the form class (read once per request)
        return type("BroadcastForm", (BroadcastForm,), {"template_choices": template_choices(request)})

    @admin.display(description=_("status"))
    def status_display(self, obj: Broadcast) -> str:
        return obj.get_status_display()

    @admin.display(description=_("Text"))
    def texts_display(self, obj: Broadcast) -> str:
        labels = dict(Language.choices)
        return format_html_join(
            "",
            '<div class="bc-sent-text" lang="{}"><strong>{}</strong>{}<br>{}</div>',
            (
                (
                    v.language,
                    labels.get(v.language, v.language),
                    format_html(" · {}", v.subject) if v.subject else "",
                    linebreaksbr(v.body),
                )
                for v in obj.variants.order_by("language")
            ),
        )

    @admin.display(description=_("Who gets it"))
    def audience_display(self, obj: Broadcast) -> str:
        languages = dict(Language.choices)
        parts = [
            (_("Channels"), ", ".join(obj.channels.order_by("name").values_list("name", flat=True))),
            (_("Districts"), ", ".join(obj.districts.order_by("name").values_list("name", flat=True)) or _("all")),
            (_("Languages"), ", ".join(str(languages.get(x, x)) for x in obj.languages) or _("all")),
            (_("Interests"), ", ".join(obj.tags) or _("all")),
        ]
        return format_html_join(mark_safe("<br>"), "{}: {}", ((str(label), value) for label, value in parts))

    def save_model(self, request: HttpRequest, obj: Broadcast, form: Any, change: bool) -> None:
        actor = request_user(request)
        values = form.service_kwargs()
        media = form.cleaned_data.get("media")
        try:
            if not change:
                created = services.broadcast_create(author=actor, meta=request_meta(request), **values)
                if media:
                    services.broadcast_update(
                        broadcast=created, actor=actor, media=media, media_kind=getattr(form, "media_kind", "image")
                    )
                obj.pk = created.pk
                form.instance = created
            else:
                extra: dict[str, Any] = {}
                if "media" in form.changed_data:
                    extra = {"media": media or "", "media_kind": getattr(form, "media_kind", "") if media else ""}
                services.broadcast_update(
                    broadcast=obj,
                    actor=actor,
                    meta=request_meta(request),
                    variants=values.pop("variants"),
                    subjects=values.pop("subjects"),
                    channels=values.pop("channels"),
                    districts=values.pop("districts"),
                    **values,
                    **extra,
                )
        except ApplicationError as exc:
            messages.error(request, exc.message)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        return None  # channels and districts are set by the services

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        broadcast = cast(Broadcast, admin_object_or_404(self, request, object_id))
        # a finished broadcast's counts come from its roll-up (analytics): no scan of its deliveries
        stats = broadcast_stats_of(broadcast.pk) if broadcast.send_started_at is not None else None
        if request.method == "GET" and "format" in request.GET:
            return _figures_export(request, broadcast, stats)
        settled = settled_progress(stats, broadcast) if stats is not None else None
        context = {
            **(extra_context or {}),
            "broadcast": broadcast,
            "plan": selectors.send_plan(broadcast) if broadcast.status not in services.FINAL else None,
            "progress": settled or selectors.broadcast_progress(broadcast),
            **workflow_context(broadcast, request_user(request)),
            "preview_content": _preview_content(broadcast),
            **compose_context(
                request,
                broadcast,
                request_user(request),
                sent_groups=[tuple(group) for group in stats.went_out] if settled and stats else None,
            ),
            **_figures_context(request, broadcast, stats),
            "history": AuditEvent.objects.filter(
                target_type="broadcasts.broadcast", target_id=str(broadcast.pk)
            ).order_by("-at")[:30],
        }
        return super().change_view(request, object_id, form_url, context)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().add_view(
            request,
            form_url,
            {**(extra_context or {}), "workflow_actions": [], **compose_context(request, None, request_user(request))},
        )


def _figures_export(request: HttpRequest, broadcast: Broadcast, stats: BroadcastStats | None) -> HttpResponse:
    """A table of the broadcast's results section as CSV or XLSX (analytics.export), for those
    who see the section."""
    if not request.user.has_perm(FIGURES_PERMISSION):
        raise PermissionDenied
    if broadcast.send_started_at is None or stats is None:
        raise Http404("no figures yet")
    figures = figures_of(stats)
    tables = [*broadcast_tables(figures, broadcast.title), table_from_chart(timeline_chart(figures))]
    response = export_response(request, tables)
    if response is None:
        raise Http404
    return response


def _figures_context(request: HttpRequest, broadcast: Broadcast, stats: BroadcastStats | None) -> dict[str, Any]:
    """The broadcast's figures (analytics), once it started sending, for those who may see them."""
    if broadcast.send_started_at is None or not request.user.has_perm(FIGURES_PERMISSION):
        return {"broadcast_figures_shown": False}
    figures = figures_of(stats) if stats is not None else None
    return {
        "broadcast_figures_shown": True,
        "broadcast_figures": figures,
        "broadcast_timeline_chart": timeline_chart(figures) if figures else None,
    }


@admin.register(Delivery, site=tenant_site)
class DeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Per-recipient outcomes (read-only)."""

    list_display = [
        "broadcast",
        "connection",
        "status",
        "attempts",
        "error_kind",
        "error_code",
        "sent_at",
        "possible_duplicate",
    ]
    list_filter = ["status", "error_kind", "possible_duplicate"]
    list_select_related = ["broadcast", "connection"]
    search_fields = ["provider_message_id"]
    show_full_result_count = False
    raw_id_fields = ["broadcast", "subscriber", "contact", "connection"]
