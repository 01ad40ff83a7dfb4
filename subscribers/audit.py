"""Labels of the audit actions subscribers writes (collected by core.audit)."""

from django.utils.translation import gettext_lazy as _

LABELS = {
    "consent_text.created": _("Consent text created"),
    "district.created": _("District created"),
    "district.updated": _("District changed"),
    "poster.created": _("Poster created"),
    "subscriber.updated": _("Subscriber changed"),
    "subscriber.data_exported": _("Subscriber's data exported"),
    "subscriber.erased": _("Subscriber erased"),
    "subscriber.created_via_api": _("Subscriber added through the API"),
    "subscribers.import_started": _("Import started"),
    "subscribers.import_resumed": _("Import resumed"),
    "subscribers.import_stalled": _("Import stalled"),
    "subscribers.imported": _("Subscribers imported"),
    "subscribers.text_overridden": _("Text for citizens changed"),
    "subscribers.text_override_deleted": _("Text for citizens reset"),
}
