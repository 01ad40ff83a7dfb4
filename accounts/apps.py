from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    label = "accounts"
    verbose_name = _("Users and audit log")

    def ready(self) -> None:
        # Library hooks only: login events are handed to the audit service.
        from accounts import receivers  # noqa: F401
