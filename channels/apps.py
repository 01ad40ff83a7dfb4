from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChannelsConfig(AppConfig):
    # Our topics app. Never install Django Channels beside it (same import name).
    name = "channels"
    label = "channels"
    verbose_name = _("Channels")
