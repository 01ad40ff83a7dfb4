"""URLs of the public schema: the operator admin, operator login, health and metrics, and (in
later apps) the provider webhooks, which arrive on the platform's own domain."""

from django.urls import include, path
from django.views.generic import RedirectView

from core import views as core_views
from core.admin_sites import operator_site
from messengers import webhooks

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", operator_site.urls),
    path("accounts/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("healthz", core_views.healthz, name="healthz"),
    path("metrics", core_views.metrics_view, name="metrics"),
    path("media/<path:path>", core_views.media, name="media"),
    path("webhooks/whatsapp/", webhooks.whatsapp, name="webhook_whatsapp"),
    path("webhooks/whatsapp/<str:route_key>/", webhooks.whatsapp, name="webhook_whatsapp_route"),
    path("webhooks/telegram/<str:route_key>/", webhooks.telegram, name="webhook_telegram"),
    path("webhooks/twilio/<str:route_key>/", webhooks.twilio, name="webhook_twilio"),
    path("webhooks/email/<str:route_key>/", webhooks.email, name="webhook_email"),
]
