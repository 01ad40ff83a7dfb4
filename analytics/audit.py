"""Labels of the audit actions analytics writes (collected by core.audit)."""

from django.utils.translation import gettext_lazy as _

LABELS = {
    "analytics.exported": _("Analytics table exported"),
}
