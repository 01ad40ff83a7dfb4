"""REST API of channels: list, detail, and the alarm state of an alarm channel (docs/api.md)."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.apiauth import acting_meta, idempotent_create, request_key
from channels import selectors, services
from channels.models import AlarmStateChange, Channel
from core.rest import IDEMPOTENCY_PARAMETER, BaseApi, ListApi, api_schema, created, error_responses


class ChannelOutput(serializers.ModelSerializer):
    class Meta:
        model = Channel
        fields = [
            "id", "name", "slug", "description", "icon", "is_public", "is_active", "requires_approval",
            "default_priority", "is_alarm", "alarm_state", "alarm_state_changed_at",
        ]  # fmt: skip


class AlarmStateChangeInput(serializers.Serializer):
    state = serializers.ChoiceField(choices=Channel.AlarmState.choices)
    note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class AlarmStateChangeOutput(serializers.ModelSerializer):
    channel = ChannelOutput()

    class Meta:
        model = AlarmStateChange
        fields = ["id", "from_state", "to_state", "note", "at", "changed_by_label", "channel"]


class ChannelFilter(django_filters.FilterSet):
    class Meta:
        model = Channel
        fields = ["slug", "is_alarm", "is_active", "is_public"]


class ChannelListApi(ListApi):
    scope = "channels:read"
    permission = "channels.view_channel"
    serializer_class = ChannelOutput
    filterset_class = ChannelFilter

    def get_queryset(self) -> QuerySet[Channel]:
        return selectors.channel_list_admin()

    @api_schema(operation_id="channels_list", responses={200: ChannelOutput(many=True), **error_responses()})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class ChannelDetailApi(BaseApi):
    scope = "channels:read"
    permission = "channels.view_channel"

    @api_schema(operation_id="channels_retrieve", responses={200: ChannelOutput, **error_responses(404)})
    def get(self, request: Request, channel_id: int) -> Response:
        channel = get_object_or_404(selectors.channel_list_admin(), pk=channel_id)
        return Response(ChannelOutput(channel).data)


class AlarmStateChangeApi(BaseApi):
    """Raise, update or end the alarm of an alarm channel. Setting the same state again records
    an update; each change proposes the channel's standard broadcast as a draft (the admin's
    alarm page does the same)."""

    scope = "channels:write"
    permission = "channels.change_alarm_state"

    InputSerializer = AlarmStateChangeInput
    OutputSerializer = AlarmStateChangeOutput

    @api_schema(
        operation_id="channels_alarm_state_change",
        request=InputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: OutputSerializer, **error_responses(404, 409)},
        examples=[
            OpenApiExample(
                "Raise the Feinstaubalarm",
                value={"state": "active", "note": "PM10 above 50 µg/m³ at Neckartor"},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, channel_id: int) -> Response:
        channel = get_object_or_404(selectors.channel_list_admin(), pk=channel_id)
        return idempotent_create(request, lambda: self._change(request, channel))

    def _change(self, request: Request, channel: Channel) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = request_key(request)
        change = services.channel_set_alarm_state(
            channel=channel, state=data.validated_data["state"], note=data.validated_data["note"],
            actor=request.user, actor_label=f"api:{key.name}" if key else "", meta=acting_meta(request),
        )  # fmt: skip
        return created(self.OutputSerializer(change).data)
