"""Tenant admin for messenger connections, templates, the phone simulator and what came in."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext_lazy as _

from core.admin_sites import ReadOnlyAdminMixin, tenant_site
from core.errors import ApplicationError
from core.http import request_meta, request_user
from messengers import nav as _nav  # noqa: F401 (registers the navigation entry)
from messengers import selectors, services
from messengers.adapters.base import CREDENTIAL_FIELDS, Provider
from messengers.models import (
    PROVIDER_CHOICES,
    Connection,
    Contact,
    InboundMessage,
    OutboundMessage,
    WebhookEvent,
    WhatsAppTemplate,
)
from messengers.outgoing import admin as _outgoing_admin  # noqa: F401 (registers outgoing webhooks)

PHONES_PER_PAGE = 25

CREDENTIAL_LABELS = {
    "access_token": _("Access token"),
    "app_secret": _("App secret (signs webhooks)"),
    "verify_token": _("Verify token (Meta's webhook handshake)"),
    "bot_token": _("Bot token (from @BotFather)"),
    "webhook_secret": _("Webhook secret (generated if empty)"),
    "auth_token": _("Auth token"),
    "host": _("SMTP host"),
    "port": _("SMTP port"),
    "username": _("SMTP user"),
    "password": _("SMTP password"),
    "use_tls": _("Use TLS (1 or 0)"),
    "inbound_secret": _("Inbound mail secret (signs mail posted to the webhook; empty: no inbound mail)"),
}


class ConnectionForm(forms.ModelForm):
    """Credentials are write-only: never rendered back; an empty field keeps the stored value."""

    class Meta:
        model = Connection
        fields = list(services.EDITABLE_FIELDS)

    def __init__(self, *args: Any, provider: Provider, stored_keys: set[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.provider = provider
        for key in CREDENTIAL_FIELDS[provider]:
            state = _("stored — leave empty to keep") if key in stored_keys else _("not set")
            self.fields[f"cred_{key}"] = forms.CharField(
                label=CREDENTIAL_LABELS.get(key, key),
                required=False,
                help_text=state,
                strip=True,
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
            )
        if "api_base" in self.fields:
            self.fields["api_base"].help_text = _(
                "Leave empty for the messenger's own API. Other addresses only if the platform operator allows them."
            )
        if provider != Provider.WHATSAPP:
            self.fields.pop("whatsapp_tier")
        if provider == Provider.SANDBOX:
            for name in ("external_id", "account_id", "api_base"):
                self.fields.pop(name)

    def credentials(self) -> dict[str, str]:
        return {
            name.removeprefix("cred_"): value
            for name, value in self.cleaned_data.items()
            if name.startswith("cred_") and value
        }


@admin.register(Connection, site=tenant_site)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ["name", "provider", "status", "public_address", "rate_limit_per_second", "contacts", "check_state"]
    list_filter = ["provider", "status"]
    search_fields = ["name", "public_address", "external_id"]
    actions = ["test_connection", "sync_templates", "register_webhook", "pause", "activate"]
    change_form_template = "messengers/admin/connection_change_form.html"

    # Adding, changing, testing, pausing and re-registering are for administrators only
    # (messengers.manage_connection); editors and approvers see the list read-only. The services
    # check the same permission, so no other way in can skip it.
    def has_manage_permission(self, request: HttpRequest) -> bool:
        return services.user_can_manage_connections(request_user(request))

    def _require_manage(self, request: HttpRequest) -> None:
        if not self.has_manage_permission(request):
            raise PermissionDenied

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and self.has_manage_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and self.has_manage_permission(request)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Connection]:
        return selectors.connection_list_admin()

    @admin.display(description=_("people"))
    def contacts(self, obj: Connection) -> int:
        return getattr(obj, "contact_count", 0)

    @admin.display(description=_("last check"))
    def check_state(self, obj: Connection) -> str:
        if obj.last_check_ok is None:
            return "–"
        return f"{'✓' if obj.last_check_ok else '✗'} {obj.last_check_detail}"

    def _provider(self, request: HttpRequest, obj: Connection | None) -> Provider | None:
        if obj is not None:
            return obj.provider_enum
        value = request.GET.get("provider") or request.POST.get("provider")
        try:
            return Provider(value) if value else None
        except ValueError:
            return None

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        provider = self._provider(request, obj)
        stored = set(selectors.connection_credentials(obj)) if obj is not None and obj.credentials_encrypted else set()

        class BoundForm(ConnectionForm):
            def __init__(self, *args: Any, **inner: Any) -> None:
                super().__init__(*args, provider=provider or Provider.SANDBOX, stored_keys=stored, **inner)

        return BoundForm

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        form = self.get_form(request, obj)(instance=obj)
        fields = list(form.fields)
        main = [f for f in fields if not f.startswith("cred_")]
        creds = [f for f in fields if f.startswith("cred_")]
        sets: list[Any] = [(None, {"fields": main})]
        if creds:
            sets.append((_("Credentials (write-only)"), {"fields": creds}))
        if obj is not None:
            sets.append((_("Webhook"), {"fields": ["webhook_url", "status", "status_detail"]}))
        return sets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["webhook_url", "status", "status_detail"] if obj is not None else []

    @admin.display(description=_("webhook URL"))
    def webhook_url(self, obj: Connection) -> str:
        return selectors.connection_webhook_url(obj) or str(_("not needed for this messenger"))

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        if self._provider(request, None) is None:
            context = {
                **self.admin_site.each_context(request),
                "title": _("Which messenger?"),
                "opts": self.model._meta,
                "providers": PROVIDER_CHOICES,
            }
            return TemplateResponse(request, "messengers/admin/choose_provider.html", context)
        return super().add_view(request, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Connection, form: Any, change: bool) -> None:
        data = form.cleaned_data
        fields = {key: data[key] for key in form.fields if not key.startswith("cred_") and key in data}
        actor = request_user(request)
        try:
            if change:
                # `obj` already carries the form's values (ModelForm validation sets them), so
                # the service compares against the stored row, or it would see no change at all.
                stored = Connection.objects.get(pk=obj.pk)
                credentials = form.credentials()
                services.connection_update(
                    connection=stored,
                    actor=actor,
                    credentials=credentials,
                    meta=request_meta(request),
                    **{k: v for k, v in fields.items() if k in services.EDITABLE_FIELDS},
                )
                form.instance = stored
                if stored.provider == Provider.TELEGRAM and (credentials or "api_base" in form.changed_data):
                    self._register_telegram(request, stored)
            else:
                created = services.connection_create(
                    provider=form.provider.value,
                    credentials=form.credentials(),
                    actor=actor,
                    meta=request_meta(request),
                    **{k: v for k, v in fields.items() if v is not None},
                )
                obj.pk = created.pk
                form.instance = created
                if created.provider == Provider.TELEGRAM:
                    self._register_telegram(request, created)
        except ApplicationError as exc:
            messages.error(request, exc.localized)
            raise _SaveRefusedError from exc

    @staticmethod
    def _register_telegram(request: HttpRequest, connection: Connection) -> None:
        """On create, and whenever the token, secret or API base changed: Telegram must send
        updates with the secret we check, for the bot we now talk to."""
        result = services.connection_register_webhook(connection=connection, actor=request_user(request))
        level = messages.SUCCESS if result.ok else messages.WARNING
        messages.add_message(request, level, _("Telegram webhook: %(detail)s") % {"detail": result.detail})

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_manage": self.has_manage_permission(request)}
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _SaveRefusedError:
            return HttpResponseRedirect(request.get_full_path())

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # disable instead: deliveries and consent records point at connections

    @admin.action(description=_("Test connection"), permissions=["manage"])
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        self._require_manage(request)
        for connection in queryset:
            result = services.connection_check(connection=connection, actor=request_user(request))
            level = messages.SUCCESS if result.ok else messages.ERROR
            messages.add_message(request, level, f"{connection.name}: {result.detail}")

    @admin.action(description=_("Sync WhatsApp templates"), permissions=["manage"])
    def sync_templates(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        self._require_manage(request)
        for connection in queryset.filter(provider=Provider.WHATSAPP):
            try:
                count = services.connection_sync_templates(connection=connection, actor=request_user(request))
                messages.success(
                    request, _("%(name)s: %(count)d templates synced.") % {"name": connection.name, "count": count}
                )
            except ApplicationError as exc:
                messages.error(request, f"{connection.name}: {exc.localized}")

    @admin.action(description=_("Register webhook (Telegram)"), permissions=["manage"])
    def register_webhook(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        self._require_manage(request)
        for connection in queryset.filter(provider=Provider.TELEGRAM):
            result = services.connection_register_webhook(connection=connection, actor=request_user(request))
            messages.add_message(
                request, messages.SUCCESS if result.ok else messages.ERROR, f"{connection.name}: {result.detail}"
            )

    @admin.action(description=_("Pause sending"), permissions=["manage"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        self._require_manage(request)
        for connection in queryset:
            services.connection_set_status(
                connection=connection,
                status=Connection.Status.PAUSED,
                detail="paused by an administrator",
                actor=request_user(request),
            )

    @admin.action(description=_("Resume sending"), permissions=["manage"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        self._require_manage(request)
        for connection in queryset:
            services.connection_set_status(
                connection=connection, status=Connection.Status.ACTIVE, detail="", actor=request_user(request)
            )

    # ---------------------------------------------------------------- phone simulator
    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/check/", view(self.check_view), name="messengers_connection_check"),
            path("sandbox/", view(self.sandbox_index), name="messengers_sandbox"),
            path("<int:pk>/phones/", view(self.phones_view), name="messengers_phones"),
            path("<int:pk>/phones/<int:contact_id>/", view(self.phone_view), name="messengers_phone"),
            path(
                "<int:pk>/phones/<int:contact_id>/messages.json",
                view(self.phone_messages),
                name="messengers_phone_messages",
            ),
            path("<int:pk>/phones/<int:contact_id>/send/", view(self.phone_send), name="messengers_phone_send"),
            *super().get_urls(),
        ]

    def check_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if request.method != "POST" or not self.has_manage_permission(request):
            raise PermissionDenied
        connection = get_object_or_404(Connection, pk=pk)
        result = services.connection_check(connection=connection, actor=request_user(request))
        messages.add_message(request, messages.SUCCESS if result.ok else messages.ERROR, result.detail)
        return HttpResponseRedirect(reverse("tenant_admin:messengers_connection_change", args=[pk]))

    def _sandbox(self, request: HttpRequest, pk: int) -> Connection:
        if not request.user.has_perm("messengers.use_sandbox"):
            raise PermissionDenied
        return get_object_or_404(Connection, pk=pk, provider=Provider.SANDBOX)

    def sandbox_index(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("messengers.use_sandbox"):
            raise PermissionDenied
        sandbox = selectors.connection_sandbox()
        if sandbox is None:
            messages.warning(request, _("There is no active sandbox connection."))
            return HttpResponseRedirect(reverse("tenant_admin:messengers_connection_changelist"))
        return HttpResponseRedirect(reverse("tenant_admin:messengers_phones", args=[sandbox.pk]))

    def phones_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        sandbox = self._sandbox(request, pk)
        if request.method == "POST":
            try:
                person = services.sandbox_person_create(connection=sandbox, name=request.POST.get("name", ""))
            except ApplicationError as exc:
                messages.error(request, exc.localized)
            else:
                # a first message typed with the new phone (the demo's "WhatsApp" links pre-fill START …)
                first = request.POST.get("text", "").strip()[:4096]
                if first:
                    services.sandbox_receive(connection=sandbox, address=person.address, text=first)
                return HttpResponseRedirect(reverse("tenant_admin:messengers_phone", args=[pk, person.pk]))
        return self._simulator(request, sandbox, person=None)

    def phone_view(self, request: HttpRequest, pk: int, contact_id: int) -> HttpResponse:
        sandbox = self._sandbox(request, pk)
        person = get_object_or_404(Contact, pk=contact_id, connection=sandbox)
        return self._simulator(request, sandbox, person=person)

    def _simulator(self, request: HttpRequest, sandbox: Connection, *, person: Contact | None) -> HttpResponse:
        """Both panes: the searchable, paged list of phones on the left, the chosen phone's chat
        on the right. Search and page are GET parameters, so every state is a bookmarkable URL
        and works without JavaScript."""
        query = request.GET.get("q", "")[: selectors.SANDBOX_SEARCH_MAX * 2]
        page = Paginator(selectors.sandbox_phone_list(sandbox, query=query), PHONES_PER_PAGE).get_page(
            request.GET.get("page")
        )
        keep = {key: value for key, value in (("q", query.strip()), ("page", str(page.number))) if value}
        context = {
            **self.admin_site.each_context(request),
            "title": _("Phone simulator"),
            "subtitle": (person.display_name or person.address) if person else None,
            "opts": self.model._meta,
            "sandbox": sandbox,
            "sandboxes": list(selectors.sandbox_connections()),
            "skin": selectors.connection_demo_look(sandbox),  # the demo's look-alikes dress the phone
            "person": person,
            "page": page,
            "page_links": page.paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1),
            "query": query.strip(),
            "keep": urlencode(keep),
            "page_query": urlencode({"q": query.strip()}) if query.strip() else "",
            "first_text": request.GET.get("text", "").strip()[:200],
        }
        return TemplateResponse(request, "messengers/admin/phones.html", context)

    def phone_messages(self, request: HttpRequest, pk: int, contact_id: int) -> JsonResponse:
        sandbox = self._sandbox(request, pk)
        person = get_object_or_404(Contact, pk=contact_id, connection=sandbox)
        after_text = request.GET.get("after", "")
        after = int(after_text) if after_text.isascii() and after_text.isdigit() else 0  # the polling cursor
        bubbles = [
            {
                "id": m.pk,
                "direction": m.direction,
                "text": m.text,
                "media_url": m.media_url,
                "media_kind": m.media_kind,
                "buttons": m.buttons,
                "at": m.created_at.isoformat(),
                "read": m.read_at is not None,
            }
            for m in selectors.sandbox_conversation(sandbox, person.address, after)[:200]
        ]
        if any(b["direction"] == "out" and not b["read"] for b in bubbles):
            services.sandbox_mark_read(connection=sandbox, address=person.address)
        return JsonResponse({"messages": bubbles, "status": person.status})

    def phone_send(self, request: HttpRequest, pk: int, contact_id: int) -> HttpResponse:
        if request.method != "POST":
            raise PermissionDenied
        sandbox = self._sandbox(request, pk)
        person = get_object_or_404(Contact, pk=contact_id, connection=sandbox)
        text = request.POST.get("text", "").strip()[:4096]
        payload = request.POST.get("payload", "").strip()[:256]
        if payload:
            services.sandbox_receive(
                connection=sandbox, address=person.address, text=text, kind="button", payload={"payload": payload}
            )
        elif text:
            services.sandbox_receive(connection=sandbox, address=person.address, text=text)
        if request.headers.get("x-requested-with") == "fetch":
            return JsonResponse({"ok": True})
        return HttpResponseRedirect(reverse("tenant_admin:messengers_phone", args=[pk, contact_id]))


class _SaveRefusedError(Exception):
    """A service refused the save; the admin shows the message and the form again."""


@admin.register(WhatsAppTemplate, site=tenant_site)
class WhatsAppTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "language", "category", "status", "parameter_count", "connection", "synced_at"]
    list_filter = ["status", "category", "language", "connection"]
    search_fields = ["name", "body"]
    list_select_related = ["connection"]
    fields = ["connection", "name", "language", "category", "status", "body", "parameter_count", "synced_at"]
    readonly_fields = ["synced_at"]


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Provider traffic and contacts: written by the messenger layer, only looked at here."""


@admin.register(InboundMessage, site=tenant_site)
class InboundMessageAdmin(ReadOnlyAdmin):
    """Every inbound message, including types we do not understand (kept and shown)."""

    list_display = ["received_at", "connection", "sender", "kind", "short_text", "handled_by"]
    list_filter = ["kind", "handled_by", "connection"]
    search_fields = ["text", "contact__address", "contact__display_name"]
    list_select_related = ["connection", "contact"]
    show_full_result_count = False

    @admin.display(description=_("from"))
    def sender(self, obj: InboundMessage) -> str:
        return obj.contact.display_name or obj.contact.address

    @admin.display(description=_("text"))
    def short_text(self, obj: InboundMessage) -> str:
        return obj.text[:80] or (f"[{obj.kind}]" if obj.kind else "")


@admin.register(OutboundMessage, site=tenant_site)
class OutboundMessageAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "connection", "to", "purpose", "status", "error_code", "short_text"]
    list_filter = ["status", "purpose", "connection"]
    list_select_related = ["connection"]
    search_fields = ["to", "text", "provider_message_id"]
    show_full_result_count = False

    @admin.display(description=_("text"))
    def short_text(self, obj: OutboundMessage) -> str:
        return obj.text[:80]


@admin.register(WebhookEvent, site=tenant_site)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "connection", "kind", "state", "dedupe_key", "attempts", "error"]
    list_filter = ["state", "kind", "connection"]
    list_select_related = ["connection"]
    search_fields = ["dedupe_key"]
    show_full_result_count = False


@admin.register(Contact, site=tenant_site)
class ContactAdmin(ReadOnlyAdmin):
    list_display = ["address", "display_name", "connection", "status", "last_inbound_at"]
    list_filter = ["status", "connection"]
    search_fields = ["address", "display_name"]
    list_select_related = ["connection"]
    show_full_result_count = False
