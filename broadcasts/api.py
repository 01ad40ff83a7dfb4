"""REST API of broadcasts: compose, the approval workflow, scheduling, sending control, the
send plan and progress (docs/api.md). Each class calls the service the admin's buttons call;
the four-eyes rule holds as there, since a key acts as the user who created it."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.apiauth import acting_meta, audit_approve_scope_use, idempotent_create
from broadcasts import selectors
from broadcasts.models import Broadcast
from broadcasts.services import composing, sending, workflow
from channels.models import Channel, Priority
from core.rest import IDEMPOTENCY_PARAMETER, BaseApi, ListApi, api_schema, created, error_responses


def _broadcasts() -> QuerySet[Broadcast]:
    return Broadcast.objects.prefetch_related("variants", "channels").select_related("author")


class BroadcastOutput(serializers.ModelSerializer):
    channels = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    texts = serializers.SerializerMethodField(help_text="Text per language (de, en, …).")
    author = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Broadcast
        fields = [
            "id", "title", "status", "priority", "channels", "texts", "scheduled_at", "revision", "author",
            "created_at", "updated_at",
        ]  # fmt: skip

    def get_texts(self, obj: Broadcast) -> dict[str, str]:
        return {variant.language: variant.body for variant in obj.variants.all()}


class BroadcastInput(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    texts = serializers.DictField(
        child=serializers.CharField(max_length=4096), help_text='Text per language: {"de": "…", "en": "…"}.'
    )
    channels = serializers.PrimaryKeyRelatedField(many=True, queryset=Channel.objects.all())
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    scheduled_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate_texts(self, value: dict[str, str]) -> dict[str, str]:
        languages = {code for code, _label in Broadcast._meta.get_field("languages").base_field.choices or []}
        unknown = sorted(set(value) - languages)
        if unknown:
            raise serializers.ValidationError(_("Unknown language: %(language)s") % {"language": unknown[0]})
        return value


class BroadcastUpdateInput(BroadcastInput):
    title = serializers.CharField(max_length=200, required=False)
    texts = serializers.DictField(child=serializers.CharField(max_length=4096), required=False)
    channels = serializers.PrimaryKeyRelatedField(many=True, queryset=Channel.objects.all(), required=False)


class BroadcastFilter(django_filters.FilterSet):
    class Meta:
        model = Broadcast
        fields = ["status", "priority"]


U3_EXAMPLE = OpenApiExample(
    "U3 disruption",
    value={
        "title": "U3 Störung",
        "texts": {"de": "U3: Störung zwischen Barmbek und Kellinghusenstraße. Bitte weiträumig ausweichen."},
        "channels": [3],
        "priority": "alert",
    },
    request_only=True,
)


class BroadcastListApi(ListApi):
    scope = "broadcasts:read"
    permission = "broadcasts.view_broadcast"
    serializer_class = BroadcastOutput
    filterset_class = BroadcastFilter

    def get_queryset(self) -> QuerySet[Broadcast]:
        return _broadcasts()

    @api_schema(operation_id="broadcasts_list", responses={200: BroadcastOutput(many=True), **error_responses()})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class BroadcastCreateApi(BaseApi):
    scope = "broadcasts:write"
    permission = "broadcasts.add_broadcast"

    @api_schema(
        operation_id="broadcasts_create",
        request=BroadcastInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: BroadcastOutput, **error_responses(409)},
        examples=[U3_EXAMPLE],
    )
    def post(self, request: Request) -> Response:
        return idempotent_create(request, lambda: self._create(request))

    def _create(self, request: Request) -> Response:
        data = BroadcastInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        broadcast = composing.broadcast_create(
            author=request.user, title=values["title"], variants=values["texts"], channels=values["channels"],
            priority=values.get("priority"), scheduled_at=values.get("scheduled_at"), meta=acting_meta(request),
        )  # fmt: skip
        return created(BroadcastOutput(_broadcasts().get(pk=broadcast.pk)).data)


class BroadcastDetailApi(BaseApi):
    scope = "broadcasts:read"
    permission = "broadcasts.view_broadcast"

    @api_schema(operation_id="broadcasts_retrieve", responses={200: BroadcastOutput, **error_responses(404)})
    def get(self, request: Request, broadcast_id: int) -> Response:
        return Response(BroadcastOutput(get_object_or_404(_broadcasts(), pk=broadcast_id)).data)


class BroadcastUpdateApi(BaseApi):
    """Change a broadcast that is not sent yet; changing approved content sends it back for approval."""

    scope = "broadcasts:write"
    permission = "broadcasts.change_broadcast"

    @api_schema(
        operation_id="broadcasts_update",
        request=BroadcastUpdateInput,
        responses={200: BroadcastOutput, **error_responses(404)},
        examples=[
            OpenApiExample(
                "New text",
                value={"texts": {"de": "U3: Störung behoben, Züge fahren wieder."}},
                request_only=True,
            )
        ],
    )
    def patch(self, request: Request, broadcast_id: int) -> Response:
        broadcast = get_object_or_404(Broadcast.objects.all(), pk=broadcast_id)
        data = BroadcastUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        composing.broadcast_update(
            broadcast=broadcast, actor=request.user, title=values.get("title"), variants=values.get("texts"),
            channels=values.get("channels"), priority=values.get("priority"),
            scheduled_at=values.get("scheduled_at", composing.KEEP),
            meta=acting_meta(request),
        )  # fmt: skip
        return Response(BroadcastOutput(_broadcasts().get(pk=broadcast.pk)).data)


class _StepApi(BaseApi):
    """A workflow step on one broadcast: POST, answered with the broadcast afterwards."""

    def step(self, request: Request, broadcast: Broadcast) -> None:
        raise NotImplementedError

    def post(self, request: Request, broadcast_id: int) -> Response:
        broadcast = get_object_or_404(Broadcast.objects.all(), pk=broadcast_id)
        self.step(request, broadcast)
        return Response(BroadcastOutput(_broadcasts().get(pk=broadcast.pk)).data)


def _step_schema(operation_id: str, request: Any = None, description: str = "", example: Any = None) -> Any:
    examples = [OpenApiExample(operation_id, value=example, request_only=True)] if example is not None else []
    return api_schema(
        operation_id=operation_id,
        request=request,
        description=description,
        responses={200: BroadcastOutput, **error_responses(404)},
        examples=examples,
    )


class BroadcastSubmitApi(_StepApi):
    scope = "broadcasts:write"
    permission = "broadcasts.change_broadcast"

    @_step_schema("broadcasts_submit", description="Ask for approval (approved at once if no channel requires it).")
    def post(self, request: Request, broadcast_id: int) -> Response:
        return super().post(request, broadcast_id)

    def step(self, request: Request, broadcast: Broadcast) -> None:
        workflow.broadcast_submit(broadcast=broadcast, actor=request.user, meta=acting_meta(request))


class ApproveInput(serializers.Serializer):
    revision = serializers.IntegerField(
        required=False, min_value=1, help_text="The revision you read; a 400 if it changed since."
    )


class BroadcastApproveApi(_StepApi):
    """Needs the approve scope and a user with the approver role who neither wrote nor changed
    the broadcast (four-eyes): a key that created a broadcast cannot approve it."""

    scope = "broadcasts:approve"
    permission = "broadcasts.approve_broadcast"

    @_step_schema("broadcasts_approve", ApproveInput, example={"revision": 2})
    def post(self, request: Request, broadcast_id: int) -> Response:
        return super().post(request, broadcast_id)

    def step(self, request: Request, broadcast: Broadcast) -> None:
        data = ApproveInput(data=request.data)
        data.is_valid(raise_exception=True)
        workflow.broadcast_approve(
            broadcast=broadcast, actor=request.user, revision=data.validated_data.get("revision"),
            meta=acting_meta(request),
        )  # fmt: skip
        audit_approve_scope_use(request, target=broadcast, action="approve")


class RejectInput(serializers.Serializer):
    comment = serializers.CharField(max_length=2000, help_text="Why; the author reads it.")


class BroadcastRejectApi(_StepApi):
    scope = "broadcasts:approve"
    permission = "broadcasts.approve_broadcast"

    @_step_schema("broadcasts_reject", RejectInput, example={"comment": "Bitte die Umleitung nennen."})
    def post(self, request: Request, broadcast_id: int) -> Response:
        return super().post(request, broadcast_id)

    def step(self, request: Request, broadcast: Broadcast) -> None:
        data = RejectInput(data=request.data)
        data.is_valid(raise_exception=True)
        workflow.broadcast_reject(
            broadcast=broadcast, actor=request.user, comment=data.validated_data["comment"], meta=acting_meta(request)
        )
        audit_approve_scope_use(request, target=broadcast, action="reject")


class ScheduleInput(serializers.Serializer):
    scheduled_at = serializers.DateTimeField(allow_null=True, help_text="When to send; null: as soon as approved.")


class BroadcastScheduleApi(_StepApi):
    scope = "broadcasts:write"
    permission = "broadcasts.change_broadcast"

    @_step_schema("broadcasts_schedule", ScheduleInput, example={"scheduled_at": "2026-12-02T07:00:00+01:00"})
    def post(self, request: Request, broadcast_id: int) -> Response:
        return super().post(request, broadcast_id)

    def step(self, request: Request, broadcast: Broadcast) -> None:
        data = ScheduleInput(data=request.data)
        data.is_valid(raise_exception=True)
        composing.broadcast_update(
            broadcast=broadcast, actor=request.user, scheduled_at=data.validated_data["scheduled_at"],
            meta=acting_meta(request),
        )  # fmt: skip


class BroadcastPauseApi(_StepApi):
    scope = "broadcasts:write"
    permission = "broadcasts.control_sending"

    @_step_schema("broadcasts_pause")
    def post(self, request: Request, broadcast_id: int) -> Response:
        return super().post(request, broadcast_id)

    def step(self, request: Request, broadcast: Broadcast) -> None:
        sending.broadcast_pause(broadcast=broadcast, actor=request.user, meta=acting_meta(request))


class BroadcastResumeApi(_StepApi):
    scope = "broadcasts:write"
    permission = "broadcasts.control_sending"

    @_step_schema("broadcasts_resume")
    def post(self, request: Request, broadcast_id: int) -> Response:
        return super().post(request, broadcast_id)

    def step(self, request: Request, broadcast: Broadcast) -> None:
        sending.broadcast_resume(broadcast=broadcast, actor=request.user, meta=acting_meta(request))


class BroadcastCancelApi(_StepApi):
    scope = "broadcasts:write"
    permission = "broadcasts.control_sending"

    @_step_schema("broadcasts_cancel")
    def post(self, request: Request, broadcast_id: int) -> Response:
        return super().post(request, broadcast_id)

    def step(self, request: Request, broadcast: Broadcast) -> None:
        sending.broadcast_cancel(broadcast=broadcast, actor=request.user, meta=acting_meta(request))


class BroadcastSendPlanApi(BaseApi):
    """Recipients, duration and cost per connection, as the compose page shows them."""

    scope = "broadcasts:read"
    permission = "broadcasts.view_broadcast"

    @api_schema(
        operation_id="broadcasts_send_plan",
        responses={
            200: inline_serializer(
                "SendPlan",
                {
                    "recipients": serializers.IntegerField(),
                    "seconds": serializers.FloatField(),
                    "cost_eur": serializers.DecimalField(max_digits=12, decimal_places=4),
                    "warnings": serializers.ListField(child=serializers.CharField()),
                    "connections": inline_serializer(
                        "SendPlanLine",
                        {
                            "connection_id": serializers.IntegerField(),
                            "name": serializers.CharField(),
                            "provider": serializers.CharField(),
                            "recipients": serializers.IntegerField(),
                            "seconds": serializers.FloatField(),
                            "cost_eur": serializers.DecimalField(max_digits=12, decimal_places=4),
                        },
                        many=True,
                    ),
                },
            ),
            **error_responses(404),
        },
    )
    def get(self, request: Request, broadcast_id: int) -> Response:
        plan = selectors.send_plan(get_object_or_404(Broadcast.objects.all(), pk=broadcast_id))
        return Response(
            {
                "recipients": plan.recipients,
                "seconds": plan.seconds,
                "cost_eur": str(plan.cost_eur),
                "warnings": [str(w) for w in plan.warnings],
                "connections": [
                    {
                        "connection_id": line.connection_id,
                        "name": line.name,
                        "provider": line.provider,
                        "recipients": line.recipients,
                        "seconds": line.seconds,
                        "cost_eur": str(line.cost_eur),
                    }  # fmt: skip
                    for line in plan.lines
                ],
            }
        )


class BroadcastProgressApi(BaseApi):
    """Delivery counts by status, failures by reason, and the share done."""

    scope = "broadcasts:read"
    permission = "broadcasts.view_broadcast"

    @api_schema(
        operation_id="broadcasts_progress",
        responses={
            200: inline_serializer(
                "Progress",
                {
                    "status": serializers.CharField(),
                    "total": serializers.IntegerField(),
                    "queued": serializers.IntegerField(),
                    "in_flight": serializers.IntegerField(),
                    "sent": serializers.IntegerField(),
                    "delivered": serializers.IntegerField(),
                    "read": serializers.IntegerField(),
                    "failed": serializers.IntegerField(),
                    "skipped": serializers.IntegerField(),
                    "possible_duplicates": serializers.IntegerField(),
                    "failures_by_reason": serializers.DictField(child=serializers.IntegerField()),
                    "done": serializers.IntegerField(),
                    "percent": serializers.FloatField(),
                },
            ),
            **error_responses(404),
        },
    )
    def get(self, request: Request, broadcast_id: int) -> Response:
        return Response(
            selectors.broadcast_progress(get_object_or_404(Broadcast.objects.all(), pk=broadcast_id)).as_dict()
        )
