from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AnalyticsConfig(AppConfig):
    name = "analytics"
    label = "analytics"
    verbose_name = _("Analytics")

    def ready(self) -> None:
        # in ready(): the collector imports models, which the app registry loads only now
        from analytics.metrics import RollupCollector
        from core.metrics import REGISTRY

        REGISTRY.register(RollupCollector())
