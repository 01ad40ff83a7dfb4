"""Labels of the audit actions messengers writes (collected by core.audit)."""

from django.utils.translation import gettext_lazy as _

LABELS = {
    "connection.created": _("Connection created"),
    "connection.updated": _("Connection changed"),
    "connection.status_changed": _("Connection status changed"),
    "connection.templates_synced": _("WhatsApp templates synchronised"),
    "webhook_endpoint.created": _("Outgoing webhook added"),
    "webhook_endpoint.updated": _("Outgoing webhook changed"),
    "webhook_endpoint.secret_rotated": _("Outgoing webhook secret renewed"),
    "webhook_endpoint.enabled": _("Outgoing webhook switched on"),
    "webhook_endpoint.disabled": _("Outgoing webhook switched off"),
    "webhook_endpoint.disabled_after_failures": _("Outgoing webhook switched off after failures"),
    "webhook_endpoint.deleted": _("Outgoing webhook deleted"),
}
