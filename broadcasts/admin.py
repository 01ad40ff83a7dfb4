"""Tenant admin for broadcasts: compose with a live phone preview, the send plan, the approval
workflow buttons and live progress while sending. Every write goes through broadcasts.services."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import linebreaksbr
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from accounts.models import AuditEvent
from broadcasts import selectors, services
from broadcasts.models import Broadcast, Delivery
from channels.models import Channel
from core.admin_sites import ReadOnlyAdminMixin, admin_object_or_404, tenant_site
from core.errors import ApplicationError
from core.http import request_meta, request_user
from messengers.models import WhatsAppTemplate
from subscribers.models import District, Language

MEDIA_LIMITS = {  # what every messenger accepts when it fetches the file by URL
    "image": ({"jpg", "jpeg", "png"}, 5 * 1024 * 1024),
    "video": ({"mp4", "3gp"}, 16 * 1024 * 1024),
}
BUTTONS = 3


class BroadcastForm(forms.ModelForm):
    body_de = forms.CharField(
        label=_("Text (German)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "data-preview": "body", "data-lang": "de"}),
    )
    body_en = forms.CharField(
        label=_("Text (English)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "data-preview": "body", "data-lang": "en"}),
    )
    body_ls = forms.CharField(
        label=_("Text (Leichte Sprache)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "data-preview": "body", "data-lang": "de-ls"}),
    )
    subject = forms.CharField(label=_("E-mail subject"), required=False, max_length=200)
    channels = forms.ModelMultipleChoiceField(
        label=_("Channels"), queryset=Channel.objects.filter(is_active=True), widget=forms.CheckboxSelectMultiple
    )
    districts = forms.ModelMultipleChoiceField(
        label=_("Districts"),
        queryset=District.objects.all(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("None ticked: every district."),
    )
    languages = forms.MultipleChoiceField(
        label=_("Languages"),
        choices=Language.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("None ticked: everybody; each person gets the text in their language where there is one."),
    )
    tags_text = forms.CharField(
        label=_("Interests"), required=False, help_text=_("Comma separated; only people with at least one of them.")
    )
    template_params_text = forms.CharField(
        label=_("Template parameters"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One per line, in the order {{1}}, {{2}} … of the template."),
    )
    scheduled_at = forms.DateTimeField(
        label=_("Send at"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%d.%m.%Y %H:%M"],
        help_text=_("In the tenant's time zone. Empty: as soon as it is approved."),
    )

    class Meta:
        model = Broadcast
        fields = ["title", "priority", "media", "wa_template_name", "wa_template_language"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for i in range(BUTTONS):
            self.fields[f"button_{i}_title"] = forms.CharField(
                label=_("Button %(n)d title") % {"n": i + 1}, required=False, max_length=20
            )
            self.fields[f"button_{i}_url"] = forms.URLField(
                label=_("Button %(n)d link") % {"n": i + 1}, required=False, assume_scheme="https"
            )
        templates = WhatsAppTemplate.objects.filter(status="APPROVED").values_list("name", "language").distinct()
        self.fields["wa_template_name"].help_text = _(
            "Needed for WhatsApp recipients who have not written in the last 24 hours."
        )
        self.fields["wa_template_name"].widget = forms.TextInput(attrs={"list": "wa-templates"})
        self.template_choices = sorted(set(templates))
        instance = self.instance
        if instance.pk:
            variants = {v.language: v for v in instance.variants.all()}
            for language, field in (("de", "body_de"), ("en", "body_en"), ("de-ls", "body_ls")):
                if language in variants:
                    self.initial[field] = variants[language].body
            subjects = [v.subject for v in variants.values() if v.subject]
            self.initial["subject"] = subjects[0] if subjects else ""
            self.initial["channels"] = list(instance.channels.values_list("pk", flat=True))
            self.initial["districts"] = list(instance.districts.values_list("pk", flat=True))
            self.initial["languages"] = instance.languages
            self.initial["tags_text"] = ", ".join(instance.tags)
            self.initial["template_params_text"] = "\n".join(instance.wa_template_params)
            self.initial["scheduled_at"] = instance.scheduled_at
            for i, button in enumerate((instance.buttons or [])[:BUTTONS]):
                self.initial[f"button_{i}_title"] = button.get("title", "")
                self.initial[f"button_{i}_url"] = button.get("url", "")

    def clean_media(self) -> Any:
        media = self.cleaned_data.get("media")
        if not media or not hasattr(media, "size"):
            return media
        extension = media.name.rsplit(".", 1)[-1].lower() if "." in media.name else ""
        for kind, (extensions, limit) in MEDIA_LIMITS.items():
            if extension in extensions:
                if media.size > limit:
                    raise forms.ValidationError(
                        _("This %(kind)s is %(size).1f MB; messengers accept at most %(limit)d MB.")
                        % {"kind": kind, "size": media.size / 1e6, "limit": limit // (1024 * 1024)}
                    )
                self.media_kind = kind
                return media
        raise forms.ValidationError(_("Upload a JPEG or PNG image, or an MP4 video."))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not any((data.get(field) or "").strip() for field in ("body_de", "body_en", "body_ls")):
            self.add_error("body_de", _("Write the text in at least one language."))
        for field in ("body_de", "body_en", "body_ls"):
            if len(data.get(field) or "") > 4096:
                self.add_error(field, _("Telegram and WhatsApp accept at most 4,096 characters."))
        for i in range(BUTTONS):
            if bool(data.get(f"button_{i}_title")) != bool(data.get(f"button_{i}_url")):
                self.add_error(f"button_{i}_url", _("A button needs both a title and a link."))
        return data

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        buttons = [
            {"title": data[f"button_{i}_title"], "url": data[f"button_{i}_url"]}
            for i in range(BUTTONS)
            if data.get(f"button_{i}_title") and data.get(f"button_{i}_url")
        ]
        subject = data.get("subject", "")
        return {
            "title": data["title"],
            "variants": {
                "de": data.get("body_de", ""),
                "en": data.get("body_en", ""),
                "de-ls": data.get("body_ls", ""),
            },
            "subjects": {"de": subject, "en": subject, "de-ls": subject},
            "channels": list(data["channels"]),
            "districts": list(data.get("districts") or []),
            "languages": list(data.get("languages") or []),
            "tags": [t.strip() for t in (data.get("tags_text") or "").split(",") if t.strip()],
            "buttons": buttons,
            "wa_template_name": data.get("wa_template_name", ""),
            "wa_template_language": data.get("wa_template_language", ""),
            "wa_template_params": [
                p.strip() for p in (data.get("template_params_text") or "").splitlines() if p.strip()
            ],
            "scheduled_at": data.get("scheduled_at"),
            "priority": data.get("priority"),
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


@admin.register(Broadcast, site=tenant_site)
class BroadcastAdmin(admin.ModelAdmin):
    form = BroadcastForm
    list_display = ["title", "status", "priority", "author", "scheduled_at", "recipients_total", "needs_review"]
    list_filter = ["status", "priority", ReviewFilter]
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
            {"fields": ["wa_template_name", "wa_template_language", "template_params_text"]},
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
        return self.fieldsets

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is not None and obj.status not in services.EDITABLE:
            # sending or done: nothing to edit, the page shows status, plan and progress
            kwargs["fields"] = []
            kwargs["form"] = forms.ModelForm
            return super().get_form(request, obj, change, **kwargs)
        kwargs["fields"] = None
        return BroadcastForm

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
        user = request_user(request)
        allowed = {key for key, _label in _available_actions(broadcast, user)}
        # controls a poll may switch on without a reload (a pause shows "resume"), rendered hidden
        possible = allowed | (_LIVE_CONTROLS if _can_control(broadcast, user) else set())
        context = {
            **(extra_context or {}),
            "broadcast": broadcast,
            "plan": selectors.send_plan(broadcast) if broadcast.status not in FINAL else None,
            "progress": selectors.broadcast_progress(broadcast),
            "workflow_actions": [(key, label, key in allowed) for key, label in ACTION_LABELS if key in possible],
            "approval_blocked": _approval_blocked(broadcast, user),
            "review_blocked": _review_blocked(broadcast, user),
            "preview_content": _preview_content(broadcast),
            "history": AuditEvent.objects.filter(
                target_type="broadcasts.broadcast", target_id=str(broadcast.pk)
            ).order_by("-at")[:30],
        }
        return super().change_view(request, object_id, form_url, context)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().add_view(request, form_url, {**(extra_context or {}), "workflow_actions": []})

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        adminform = context.get("adminform")
        form = adminform.form if adminform is not None else None
        context["template_choices"] = getattr(form, "template_choices", [])
        return super().render_change_form(request, context, *args, **kwargs)

    # ---------------------------------------------------------------- workflow
    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/progress.json", view(self.progress_json), name="broadcasts_broadcast_progress"),
            path("<int:pk>/plan.json", view(self.plan_json), name="broadcasts_broadcast_plan"),
            path("<int:pk>/do/<str:action>/", view(self.action_view), name="broadcasts_broadcast_action"),
            *super().get_urls(),
        ]

    def progress_json(self, request: HttpRequest, pk: int) -> JsonResponse:
        """What the change page polls: the counts (they add up to `total`), the status with its
        label in the user's language, and the actions this user may take now."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        broadcast = get_object_or_404(Broadcast, pk=pk)
        return JsonResponse(
            {
                **selectors.broadcast_progress(broadcast).as_dict(),
                "status_label": broadcast.get_status_display(),
                "final": broadcast.status in FINAL,
                "paused_reason": broadcast.paused_reason if broadcast.status == Broadcast.Status.PAUSED else "",
                "actions": [key for key, _label in _available_actions(broadcast, request_user(request))],
            }
        )

    def plan_json(self, request: HttpRequest, pk: int) -> JsonResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        plan = selectors.send_plan(get_object_or_404(Broadcast, pk=pk))
        return JsonResponse(
            {
                "recipients": plan.recipients,
                "seconds": plan.seconds,
                "cost_eur": str(plan.cost_eur),
                "warnings": plan.warnings,
                "lines": [{**line.__dict__, "cost_eur": str(line.cost_eur)} for line in plan.lines],
            }
        )

    def action_view(self, request: HttpRequest, pk: int, action: str) -> HttpResponse:
        if request.method != "POST":
            raise PermissionDenied
        broadcast = get_object_or_404(Broadcast, pk=pk)
        actor = request_user(request)
        if actor is None or action not in dict(ACTION_LABELS):
            raise PermissionDenied
        try:
            result = _run_action(action, broadcast, actor, request)
        except ApplicationError as exc:
            messages.error(request, _error_text(exc))
        else:
            messages.success(request, result)
        return HttpResponseRedirect(reverse("tenant_admin:broadcasts_broadcast_change", args=[pk]))


ACTION_LABELS = [
    ("submit", _("Submit for approval")),
    ("approve", _("Approve")),
    ("reject", _("Reject")),
    ("bypass", _("Send now without approval (emergency)")),
    ("pause", _("Pause")),
    ("resume", _("Resume")),
    ("cancel", _("Cancel")),
    ("review", _("Mark as reviewed")),
]


FINAL = (Broadcast.Status.SENT, Broadcast.Status.CANCELLED)
_LIVE_CONTROLS = {"pause", "resume", "cancel"}


def _can_control(broadcast: Broadcast, user: Any) -> bool:
    return (
        user is not None
        and broadcast.status not in FINAL
        and broadcast.status not in (Broadcast.Status.DRAFT, Broadcast.Status.SUBMITTED, Broadcast.Status.REJECTED)
        and user.has_perm("broadcasts.control_sending")
    )


def _approval_blocked(broadcast: Broadcast, user: Any) -> str:
    """For an approver who may not approve this one (four-eyes): why, in their language."""
    if broadcast.status != Broadcast.Status.SUBMITTED or not selectors.user_can_approve(user):
        return ""
    conflict = selectors.broadcast_four_eyes_conflict(broadcast, user)
    return conflict.reason if conflict else ""


def _review_blocked(broadcast: Broadcast, user: Any) -> str:
    if not broadcast.needs_review or not selectors.user_can_review(user):
        return ""
    conflict = selectors.broadcast_four_eyes_conflict(broadcast, user, step="review")
    return conflict.reason if conflict else ""


def _error_text(exc: ApplicationError) -> str:
    """The services speak English; the refusals a user meets in the normal flow are shown in
    their language."""
    conflict = exc.extra.get("conflict")
    if isinstance(conflict, selectors.FourEyesConflict):
        return conflict.reason
    if "revision" in exc.extra:
        return str(
            _("This broadcast was changed after you opened it; read the new version below and approve it again.")
        )
    return exc.message


def _preview_content(broadcast: Broadcast) -> dict[str, Any]:
    """The stored content, for the preview (the only source once the form is read-only)."""
    return {
        "variants": {v.language: {"body": v.body, "subject": v.subject} for v in broadcast.variants.all()},
        "buttons": list(broadcast.buttons or []),
        "media_url": broadcast.media.url if broadcast.media else "",
        "media_kind": broadcast.media_kind,
        "wa_template_name": broadcast.wa_template_name,
    }


def _available_actions(broadcast: Broadcast, user: Any) -> list[tuple[str, Any]]:
    """The workflow buttons this user may press now (the services check the same again)."""
    s = Broadcast.Status
    allowed: set[str] = set()
    if user is None:
        return []
    if broadcast.status in (s.DRAFT, s.REJECTED) and user.has_perm("broadcasts.change_broadcast"):
        allowed.add("submit")
    if (
        broadcast.status in (s.DRAFT, s.SUBMITTED, s.REJECTED)
        and user.has_perm("broadcasts.send_without_approval")
        and broadcast.priority == "alert"
    ):
        allowed.add("bypass")
    if broadcast.status == s.SUBMITTED and selectors.user_can_approve(user):
        allowed.add("reject")  # rejecting only stops it: open to the author and co-editors too
        if selectors.user_may_approve(broadcast, user):
            allowed.add("approve")  # the others see why not instead (four-eyes)
    if broadcast.status == s.SENDING and user.has_perm("broadcasts.control_sending"):
        allowed.add("pause")
    if broadcast.status == s.PAUSED and user.has_perm("broadcasts.control_sending"):
        allowed.add("resume")
    if broadcast.status not in (s.SENT, s.CANCELLED) and user.has_perm("broadcasts.control_sending"):
        allowed.add("cancel")
    if selectors.user_may_review(broadcast, user):
        allowed.add("review")
    return [(key, label) for key, label in ACTION_LABELS if key in allowed]


def _run_action(action: str, broadcast: Broadcast, actor: Any, request: HttpRequest) -> str:
    comment = request.POST.get("comment", "")
    meta = request_meta(request)
    if action == "submit":
        broadcast = services.broadcast_submit(broadcast=broadcast, actor=actor, meta=meta)
        if broadcast.status == Broadcast.Status.SUBMITTED:
            return str(_("Submitted; the approvers have been notified."))
        return str(
            _("No approval needed for these channels: it is %(status)s.") % {"status": broadcast.get_status_display()}
        )
    if action == "approve":
        seen = request.POST.get("revision", "")
        broadcast = services.broadcast_approve(
            broadcast=broadcast, actor=actor, revision=int(seen) if seen.isdigit() else 0, meta=meta
        )
        return str(_("Approved: %(status)s.") % {"status": broadcast.get_status_display()})
    if action == "reject":
        services.broadcast_reject(broadcast=broadcast, actor=actor, comment=comment, meta=meta)
        return str(_("Rejected; the author has been told why."))
    if action == "bypass":
        services.broadcast_send_without_approval(broadcast=broadcast, actor=actor, meta=meta)
        return str(_("Sending without approval; it will be reviewed afterwards."))
    if action == "pause":
        services.broadcast_pause(broadcast=broadcast, actor=actor, reason=comment or "paused by a user", meta=meta)
        return str(_("Paused."))
    if action == "resume":
        services.broadcast_resume(broadcast=broadcast, actor=actor, meta=meta)
        return str(_("Sending again."))
    if action == "cancel":
        services.broadcast_cancel(broadcast=broadcast, actor=actor, meta=meta)
        return str(_("Cancelled; nobody else gets it."))
    services.broadcast_review(broadcast=broadcast, actor=actor, comment=comment, meta=meta)
    return str(_("Marked as reviewed."))


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
