"""Labels of the audit actions messengers writes (collected by core.audit)."""

from django.utils.translation import gettext_lazy as _

LABELS = {
    "connection.created": _("Connection created"),
    "connection.updated": _("Connection changed"),
    "connection.status_changed": _("Connection status changed"),
    "connection.templates_synced": _("WhatsApp templates synchronised"),
}
