"""Tenant admin for outgoing webhooks: endpoints (administrators only) and their delivery log.

The signing secret is shown once, on the page that answers the form that made it (adding an
endpoint, or renewing its secret), never again: it is stored encrypted and the page is not
cached. Every write goes through messengers.outgoing.services, which checks the role again.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from core.admin_sites import ReadOnlyAdminMixin, admin_object_or_404, tenant_site
from core.errors import ApplicationError
from core.http import request_meta, request_user
from messengers.outgoing import selectors, services
from messengers.outgoing.models import EVENT_LABELS, WebhookAttempt, WebhookEndpoint


class WebhookEndpointForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        label=_("events"), choices=list(EVENT_LABELS.items()), widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "description", "events"]
        help_texts = {
            "url": _("An https:// address of your own system that can be reached from the internet."),
        }


class _SaveRefusedError(Exception):
    """A service refused the save; the admin shows the message and the form again."""


@admin.register(WebhookEndpoint, site=tenant_site)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "description", "event_list", "state", "last_success_at", "last_failure_at", "log_link"]
    list_filter = ["is_active"]
    search_fields = ["url", "description"]
    readonly_fields = ["state", "secret_start", "consecutive_failures", "failing_since", "last_success_at"]
    change_form_template = "messengers/admin/webhook_endpoint_change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        return selectors.webhook_endpoint_list()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["url", "description", "events"]
        return ["url", "description", "events", *self.readonly_fields]

    @admin.display(description=_("secret"))
    def secret_start(self, obj: WebhookEndpoint) -> str:
        """Its first characters, as code: a random string, not words to translate."""
        return format_html("<code>{}…</code>", obj.secret_hint)

    @admin.display(description=_("events"))
    def event_list(self, obj: WebhookEndpoint) -> str:
        return ", ".join(str(EVENT_LABELS.get(event, event)) for event in obj.events)

    @admin.display(description=_("state"))
    def state(self, obj: WebhookEndpoint) -> str:
        if obj.is_active:
            return str(_("Active"))
        return str(obj.get_disabled_display() or _("Switched off"))

    @admin.display(description=_("delivery log"))
    def log_link(self, obj: WebhookEndpoint) -> str:
        url = reverse("tenant_admin:messengers_webhookattempt_changelist")
        return format_html('<a href="{}?endpoint__id__exact={}">{}</a>', url, obj.pk, _("Show"))

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        data = form.cleaned_data
        actor, meta = request_user(request), request_meta(request)
        try:
            if change:
                stored = WebhookEndpoint.objects.get(pk=obj.pk)
                form.instance = services.webhook_endpoint_update(
                    endpoint=stored, url=data["url"], events=list(data["events"]),
                    description=data.get("description", ""), actor=actor, meta=meta,
                )  # fmt: skip
            else:
                created, secret = services.webhook_endpoint_create(
                    url=data["url"], events=list(data["events"]), description=data.get("description", ""),
                    actor=actor, meta=meta,
                )  # fmt: skip
                obj.pk = created.pk
                form.instance = created
                request._webhook_secret = secret  # type: ignore[attr-defined]  # shown by response_add
        except ApplicationError as exc:
            messages.error(request, exc.localized)
            raise _SaveRefusedError from exc

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass  # no relations; the service saved everything

    def response_add(self, request: HttpRequest, obj: WebhookEndpoint, post_url_continue: str | None = None) -> Any:
        return self._secret_page(request, obj, getattr(request, "_webhook_secret", ""))

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _SaveRefusedError:
            return HttpResponseRedirect(request.get_full_path())

    def delete_model(self, request: HttpRequest, obj: WebhookEndpoint) -> None:
        services.webhook_endpoint_delete(endpoint=obj, actor=request_user(request), meta=request_meta(request))

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # The log may hold many thousand rows: the confirmation names the webhooks, not each row
        # that goes with them (Django's default would load every one).
        names = [str(obj) for obj in objs]
        return names, {self.model._meta.verbose_name_plural: len(names)}, set(), []

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            self.delete_model(request, endpoint)

    def _secret_page(self, request: HttpRequest, endpoint: WebhookEndpoint, secret: str) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": _("Signing secret"),
            "opts": self.model._meta,
            "endpoint": endpoint,
            "secret": secret,
        }
        response = TemplateResponse(request, "messengers/admin/webhook_secret.html", context)
        add_never_cache_headers(response)
        return response

    # ------------------------------------------------------------------ buttons
    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<str:object_id>/rotate/", view(self.rotate_view), name="messengers_webhookendpoint_rotate"),
            path("<str:object_id>/switch/", view(self.switch_view), name="messengers_webhookendpoint_switch"),
            *super().get_urls(),
        ]

    def _endpoint_for_post(self, request: HttpRequest, object_id: str) -> WebhookEndpoint:
        if request.method != "POST" or not self.has_change_permission(request):
            raise PermissionDenied
        endpoint = admin_object_or_404(self, request, object_id)
        assert isinstance(endpoint, WebhookEndpoint)
        return endpoint

    def rotate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        endpoint = self._endpoint_for_post(request, object_id)
        try:
            secret = services.webhook_endpoint_rotate_secret(
                endpoint=endpoint, actor=request_user(request), meta=request_meta(request)
            )
        except ApplicationError as exc:
            raise PermissionDenied(exc.message) from exc
        return self._secret_page(request, endpoint, secret)

    def switch_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        endpoint = self._endpoint_for_post(request, object_id)
        active = request.POST.get("active") == "1"
        try:
            services.webhook_endpoint_set_active(
                endpoint=endpoint, active=active, actor=request_user(request), meta=request_meta(request)
            )
        except ApplicationError as exc:
            raise PermissionDenied(exc.message) from exc
        messages.success(request, _("The webhook is switched on.") if active else _("The webhook is switched off."))
        return HttpResponseRedirect(reverse("tenant_admin:messengers_webhookendpoint_change", args=[endpoint.pk]))


@admin.register(WebhookAttempt, site=tenant_site)
class WebhookAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The delivery log. The answer's excerpt is plain text (services.response_excerpt) and the
    page escapes it like every other value."""

    list_display = ["at", "endpoint", "event_type", "attempt", "status_code", "duration_ms", "ok", "error", "answer"]
    list_filter = ["endpoint", "ok", "event_type"]
    list_select_related = ["endpoint"]
    show_full_result_count = False
    fields = [
        "at",
        "endpoint",
        "event_type",
        "attempt",
        "status_code",
        "duration_ms",
        "ok",
        "error",
        "response_excerpt",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookAttempt]:
        return selectors.webhook_attempt_list()

    @admin.display(description=_("answer (excerpt)"))
    def answer(self, obj: WebhookAttempt) -> str:
        return obj.response_excerpt
