"""The REST API of a tenant, mounted under /api/v1/ by config/urls_tenant.py (docs/api.md):
one URL per operation, each an API class of the app that owns it, plus the OpenAPI schema and
its Swagger UI and ReDoc pages (served from our own static files)."""

from django.urls import path, re_path

from analytics import api as analytics_api
from broadcasts import api as broadcasts_api
from channels import api as channels_api
from core import apidocs
from core.rest import api_not_found
from inbox import api as inbox_api
from subscribers import api as subscribers_api

urlpatterns = [
    path("channels/", channels_api.ChannelListApi.as_view(), name="api-channels"),
    path("channels/<int:channel_id>/", channels_api.ChannelDetailApi.as_view(), name="api-channel"),
    path(
        "channels/<int:channel_id>/alarm-state/",
        channels_api.AlarmStateChangeApi.as_view(),
        name="api-channel-alarm-state",
    ),
    path("broadcasts/", broadcasts_api.BroadcastListApi.as_view(), name="api-broadcasts"),
    path("broadcasts/create/", broadcasts_api.BroadcastCreateApi.as_view(), name="api-broadcast-create"),
    path("broadcasts/<int:broadcast_id>/", broadcasts_api.BroadcastDetailApi.as_view(), name="api-broadcast"),
    path("broadcasts/<int:broadcast_id>/update/", broadcasts_api.BroadcastUpdateApi.as_view()),
    path("broadcasts/<int:broadcast_id>/submit/", broadcasts_api.BroadcastSubmitApi.as_view()),
    path("broadcasts/<int:broadcast_id>/approve/", broadcasts_api.BroadcastApproveApi.as_view()),
    path("broadcasts/<int:broadcast_id>/reject/", broadcasts_api.BroadcastRejectApi.as_view()),
    path("broadcasts/<int:broadcast_id>/schedule/", broadcasts_api.BroadcastScheduleApi.as_view()),
    path("broadcasts/<int:broadcast_id>/pause/", broadcasts_api.BroadcastPauseApi.as_view()),
    path("broadcasts/<int:broadcast_id>/resume/", broadcasts_api.BroadcastResumeApi.as_view()),
    path("broadcasts/<int:broadcast_id>/cancel/", broadcasts_api.BroadcastCancelApi.as_view()),
    path("broadcasts/<int:broadcast_id>/send-plan/", broadcasts_api.BroadcastSendPlanApi.as_view()),
    path("broadcasts/<int:broadcast_id>/progress/", broadcasts_api.BroadcastProgressApi.as_view()),
    path("broadcasts/<int:broadcast_id>/stats/", analytics_api.BroadcastStatsApi.as_view()),
    path("subscribers/create/", subscribers_api.SubscriberCreateApi.as_view(), name="api-subscriber-create"),
    path("subscribers/lookup/", subscribers_api.SubscriberLookupApi.as_view(), name="api-subscriber-lookup"),
    path("subscribers/<int:subscriber_id>/erase/", subscribers_api.SubscriberEraseApi.as_view()),
    path("subscribers/imports/", subscribers_api.SubscriberImportCreateApi.as_view(), name="api-imports"),
    path("subscribers/imports/<int:import_id>/", subscribers_api.SubscriberImportDetailApi.as_view()),
    path("inbox/conversations/", inbox_api.ConversationListApi.as_view(), name="api-conversations"),
    path("inbox/conversations/<int:conversation_id>/", inbox_api.ConversationDetailApi.as_view()),
    path("inbox/conversations/<int:conversation_id>/reply/", inbox_api.ConversationReplyApi.as_view()),
    path("inbox/conversations/<int:conversation_id>/assign/", inbox_api.ConversationAssignApi.as_view()),
    path("inbox/conversations/<int:conversation_id>/close/", inbox_api.ConversationCloseApi.as_view()),
    path("analytics/headline/", analytics_api.AnalyticsHeadlineApi.as_view(), name="api-analytics-headline"),
    *apidocs.urlpatterns,
    re_path(r"", api_not_found),  # last: any other path answers in the API's error format
]
