"""Labels of the audit actions tenants writes (collected by core.audit)."""

from django.utils.translation import gettext_lazy as _

LABELS = {
    "tenant.onboarded": _("Tenant set up"),
    "tenant.settings_changed": _("Settings changed"),
    "tenant.suspended": _("Tenant suspended"),
    "tenant.reactivated": _("Tenant reactivated"),
}
