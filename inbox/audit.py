"""Labels of the audit actions the inbox writes (collected by core.audit)."""

from django.utils.translation import gettext_lazy as _

LABELS = {
    "inbox.forwarded": _("Conversation forwarded to a department"),
    "inbox.settings_changed": _("Inbox settings changed"),
}
