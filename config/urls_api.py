"""The REST API of a tenant, mounted under /api/v1/ by config/urls_tenant.py (docs/api.md):
one URL per operation, each an API class of the app that owns it, plus the OpenAPI schema and
its Swagger UI and ReDoc pages (served from our own static files)."""

from django.urls import path

from channels import api as channels_api
from core import apidocs

urlpatterns = [
    path("channels/", channels_api.ChannelListApi.as_view(), name="api-channels"),
    path("channels/<int:channel_id>/", channels_api.ChannelDetailApi.as_view(), name="api-channel"),
    path(
        "channels/<int:channel_id>/alarm-state/",
        channels_api.AlarmStateChangeApi.as_view(),
        name="api-channel-alarm-state",
    ),
    *apidocs.urlpatterns,
]
