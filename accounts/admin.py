"""Users and the audit log, in both the operator admin and each tenant's admin."""

from __future__ import annotations

from typing import Any

from allauth.mfa.models import Authenticator
from django import forms
from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from accounts import nav as _nav  # noqa: F401 (registers the navigation entries)
from accounts import roles, services
from accounts.forms import StaffUserForm
from accounts.models import API_SCOPES, ApiKey, AuditEvent, User
from accounts.selectors import audit_target_kind
from core.admin_sites import ReadOnlyAdminMixin, operator_site, tenant_site
from core.errors import ApplicationError
from core.http import request_base_url, request_meta, request_user


class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: the log is written by services, never edited by hand. Actions show their
    label (AuditEvent.action's choices come from each app's audit.py), target types the model's
    name, never a code."""

    list_display = ["at", "actor_label", "action", "target_kind", "target_label", "ip_address"]
    list_filter = ["action"]
    search_fields = ["actor_label", "action", "target_label", "target_id"]
    date_hierarchy = "at"
    list_per_page = 100
    readonly_fields = (
        "at",
        "actor_label",
        "action",
        "target_kind",
        "target_id",
        "target_label",
        "details",
        "ip_address",
    )
    fields = readonly_fields
    show_full_result_count = False

    @admin.display(description=_("target type"))
    def target_kind(self, obj: AuditEvent) -> str:
        return audit_target_kind(obj.target_type)


class RoleFilter(admin.SimpleListFilter):
    """Roles by their label (the groups' names are codes)."""

    title = _("role")
    parameter_name = "role"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(name, label) for name, label in roles.ROLE_LABELS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> QuerySet[User]:
        value = self.value()
        return queryset.filter(groups__name=value) if value else queryset


operator_site.register(AuditEvent, AuditEventAdmin)
tenant_site.register(AuditEvent, AuditEventAdmin)


class StaffUserAdmin(admin.ModelAdmin):
    form = StaffUserForm
    list_display = ["username", "email", "full_name", "role_list", "two_factor", "is_active", "last_login"]
    list_filter = ["is_active", RoleFilter]
    search_fields = ["username", "email", "first_name", "last_name"]
    ordering = ["username"]
    actions = ["send_password_link"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return (
            super()
            .get_queryset(request)
            .prefetch_related("groups")
            .annotate(has_mfa=Exists(Authenticator.objects.filter(user=OuterRef("pk"), type=Authenticator.Type.TOTP)))
        )

    @admin.display(description=_("name"))
    def full_name(self, obj: User) -> str:
        return obj.get_full_name()

    @admin.display(description=_("roles"))
    def role_list(self, obj: User) -> str:
        return ", ".join(str(roles.ROLE_LABELS.get(g.name, g.name)) for g in obj.groups.all())

    @admin.display(description=_("two-factor"), boolean=True)
    def two_factor(self, obj: User) -> bool:
        return bool(getattr(obj, "has_mfa", False))

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        data = form.cleaned_data
        actor = request_user(request)
        try:
            if not change:
                user = services.user_create(
                    username=data["username"],
                    email=data["email"],
                    first_name=data["first_name"],
                    last_name=data["last_name"],
                    role_names=list(data["roles"]),
                    actor=actor,
                    meta=request_meta(request),
                )
                form.instance = user
                obj.pk = user.pk
                link = services.user_password_setup_link(user=user, base_url=request_base_url(request))
                messages.info(
                    request,
                    _("Send this one-time link to %(user)s to choose a password: %(link)s")
                    % {"user": user.get_username(), "link": link},
                )
            else:
                fresh = User.objects.get(pk=obj.pk)
                services.user_update(
                    user=fresh,
                    actor=actor,
                    meta=request_meta(request),
                    email=data["email"],
                    first_name=data["first_name"],
                    last_name=data["last_name"],
                    is_active=data["is_active"],
                    language=data["language"],
                )
                services.user_set_roles(
                    user=fresh, role_names=list(data["roles"]), actor=actor, meta=request_meta(request)
                )
        except ApplicationError as exc:
            messages.error(request, exc.localized)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # roles are applied by the services in save_model (and audit-logged there)
        return None

    @admin.action(description=_("Send a set-password link"))
    def send_password_link(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        base_url = request_base_url(request)
        for user in queryset:
            services.user_send_password_link(
                user=user, base_url=base_url, actor=request_user(request), meta=request_meta(request)
            )
        messages.success(request, _("Sent %(count)d link(s).") % {"count": queryset.count()})

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # deactivate instead: the audit log and approvals keep pointing at the person
        return False


tenant_site.register(User, StaffUserAdmin)


@admin.register(User, site=operator_site)
class OperatorUserAdmin(admin.ModelAdmin):
    list_display = ["username", "email", "is_superuser", "is_active", "last_login"]
    search_fields = ["username", "email"]
    fields = ["username", "email", "first_name", "last_name", "is_active", "last_login", "date_joined"]
    readonly_fields = ["username", "last_login", "date_joined"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # operators are created with `manage.py createsuperuser` on the server
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("scopes"), choices=list(API_SCOPES.items()), widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "expires_at", "rate_limit"]


class ApiKeyAdmin(admin.ModelAdmin):
    """Admins create keys for the REST API (docs/api.md). The key is shown once, on the page after
    saving; afterwards only its prefix. Keys are revoked, never edited or deleted (the audit
    log keeps pointing at them)."""

    form = ApiKeyForm
    list_display = ["name", "prefix", "user", "scope_list", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix"]
    actions = ["revoke"]
    readonly_fields = ["prefix", "user", "created_at", "last_used_at", "revoked_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiKey]:
        return super().get_queryset(request).select_related("user")

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[Any]:
        if obj is None:
            return ["name", "scopes", "expires_at", "rate_limit"]
        return ["name", "prefix", "scopes", "user", "created_at", "expires_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[Any]:
        if obj is None:
            return []
        return self.get_fields(request, obj)

    @admin.display(description=_("scopes"))
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        actor = request_user(request)
        assert actor is not None and not change
        data = form.cleaned_data
        key, secret = services.api_key_create(
            name=data["name"], scopes=list(data["scopes"]), actor=actor, expires_at=data["expires_at"],
            rate_limit=data["rate_limit"], meta=request_meta(request),
        )  # fmt: skip
        obj.pk = key.pk
        request._api_key_secret = secret  # type: ignore[attr-defined]  # shown once by response_add

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        return None

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None) -> HttpResponse:
        key = ApiKey.objects.get(pk=obj.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": _("API key created"),
            "key": key,
            "secret": getattr(request, "_api_key_secret", ""),
            "opts": self.opts,
        }
        response = TemplateResponse(request, "accounts/admin/api_key_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description=_("Revoke the selected API keys"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = sum(
            services.api_key_revoke(key=key, actor=request_user(request), meta=request_meta(request))
            for key in queryset
        )
        messages.success(request, _("Revoked %(count)d API key(s).") % {"count": count})


tenant_site.register(ApiKey, ApiKeyAdmin)
