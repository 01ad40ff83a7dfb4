from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MessengersConfig(AppConfig):
    name = "messengers"
    label = "messengers"
    verbose_name = _("Messengers")
