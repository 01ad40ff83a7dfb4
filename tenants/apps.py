from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TenantsConfig(AppConfig):
    name = "tenants"
    label = "tenants"
    verbose_name = _("Tenants")

    def ready(self) -> None:
        # in ready(): the collector imports models, which the app registry loads only now
        from core.metrics import REGISTRY
        from tenants.metrics import TenantCollector

        REGISTRY.register(TenantCollector())
