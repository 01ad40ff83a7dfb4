"""URLs of a tenant's domain: its admin and staff login, and its public pages for citizens
(the bare domain is the subscribe page; status widget, archive)."""

from django.urls import include, path

from core import views as core_views
from core.admin_sites import tenant_site

urlpatterns = [
    path("admin/", tenant_site.urls),
    path("accounts/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include("config.urls_api")),
    path("healthz", core_views.healthz, name="healthz"),
    path("media/<path:path>", core_views.media, name="media"),
    path("", include("channels.urls")),
    path("", include("subscribers.urls")),
    path("", include("broadcasts.urls")),
    path("", include("inbox.urls")),
]
