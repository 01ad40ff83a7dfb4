"""Labels of the audit actions channels writes (collected by core.audit)."""

from django.utils.translation import gettext_lazy as _

LABELS = {
    "channel.created": _("Channel created"),
    "channel.updated": _("Channel changed"),
    "channel.alarm_state_changed": _("Alarm state changed"),
    "channel.subscribers_exported": _("Channel's subscribers exported"),
}
