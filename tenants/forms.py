"""Forms of the operator admin (onboarding, suspension) and of the tenant's own settings page."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from tenants.models import Tenant


class OnboardTenantForm(forms.Form):
    name = forms.CharField(label=_("Display name"), max_length=200, help_text=_("e.g. Stadt Bochum"))
    schema_name = forms.CharField(
        label=_("Short name"),
        max_length=41,
        help_text=_("Lower case letters, digits and _; used for the database schema, e.g. bochum."),
    )
    domain = forms.CharField(
        label=_("Domain"),
        max_length=253,
        help_text=_("Where the tenant's staff and citizens reach it, e.g. bochum.localhost."),
    )
    kind = forms.ChoiceField(label=_("Kind"), choices=Tenant.Kind.choices, initial=Tenant.Kind.MUNICIPALITY)
    admin_email = forms.EmailField(label=_("E-mail of the first administrator"))
    timezone = forms.CharField(label=_("Time zone"), initial="Europe/Berlin", max_length=64)
    language = forms.ChoiceField(label=_("Default language"), choices=settings.LANGUAGES, initial="de")


class SuspendTenantForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Shown to the tenant's users on the notice page."),
    )


class TenantSettingsForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = [
            "name",
            "logo",
            "primary_color",
            "timezone",
            "default_language",
            "inbox_retention_days",
            "privacy_notice_url",
            "quiet_hours_start",
            "quiet_hours_end",
            "link_tracking",
        ]
        widgets = {"primary_color": forms.TextInput(attrs={"type": "color"})}
