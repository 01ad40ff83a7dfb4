"""REST API of the inbox: list conversations, read a thread, reply, assign, close (docs/api.md).
The list's filters are the inbox page's (inbox.selectors.ListFilters), checked by django-filter."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.apiauth import idempotent_create
from core.rest import IDEMPOTENCY_PARAMETER, BaseApi, ListApi, api_schema, created, error_responses
from inbox import selectors, services
from inbox.models import Conversation, Entry
from messengers.models import PROVIDER_CHOICES

STATUS_CHOICES = [("open", "open and waiting"), ("waiting", "waiting"), ("closed", "closed"), ("all", "all")]


class ConversationOutput(serializers.ModelSerializer):
    person = serializers.SerializerMethodField(help_text="Name and address as the acting user may see them.")
    provider = serializers.CharField(source="connection.provider")
    assignee = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Conversation
        fields = [
            "id", "status", "person", "provider", "assignee", "labels", "unread_count", "preview", "opened_at",
            "last_activity_at", "closed_at",
        ]  # fmt: skip

    def get_person(self, obj: Conversation) -> dict[str, str]:
        name, address = selectors.contact_shown(obj, self.context["request"].user)
        return {"name": name, "address": address}


class EntryOutput(serializers.ModelSerializer):
    author = serializers.SlugRelatedField(slug_field="username", read_only=True)
    delivery = serializers.SerializerMethodField(help_text="Status of an answer sent to the person.")

    class Meta:
        model = Entry
        fields = ["id", "kind", "text", "event", "author", "created_at", "delivery"]

    def get_delivery(self, obj: Entry) -> str:
        return obj.outbound.status if obj.outbound is not None else ""


class ConversationFilter(django_filters.FilterSet):
    """Validated by django-filter, applied by the inbox's own selector (as on the inbox page)."""

    status = django_filters.ChoiceFilter(choices=STATUS_CHOICES, empty_label=None)
    unassigned = django_filters.BooleanFilter()
    label = django_filters.CharFilter(max_length=40)
    provider = django_filters.ChoiceFilter(choices=PROVIDER_CHOICES)
    channel = django_filters.NumberFilter(min_value=1, max_value=2**63 - 1)
    q = django_filters.CharFilter(max_length=200, help_text="Full text over the threads.")

    class Meta:
        model = Conversation
        fields: list[str] = []

    def filter_queryset(self, queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
        data = self.form.cleaned_data
        channel = data.get("channel")
        filters = selectors.ListFilters(
            status=data.get("status") or "open", unassigned=bool(data.get("unassigned")), label=data.get("label") or "",
            provider=data.get("provider") or "", channel_id=int(channel) if channel is not None else None,
            query=data.get("q") or "",
        )  # fmt: skip
        return selectors.conversation_list(filters)


class ConversationListApi(ListApi):
    scope = "inbox:read"
    permission = "inbox.view_conversation"
    serializer_class = ConversationOutput
    filterset_class = ConversationFilter

    def get_queryset(self) -> QuerySet[Conversation]:
        return selectors.conversation_list(selectors.ListFilters(status="all"))

    @api_schema(
        operation_id="inbox_conversations_list", responses={200: ConversationOutput(many=True), **error_responses()}
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class ThreadOutput(ConversationOutput):
    entries = serializers.SerializerMethodField()

    class Meta(ConversationOutput.Meta):
        fields = [*ConversationOutput.Meta.fields, "entries"]

    @extend_schema_field(EntryOutput(many=True))
    def get_entries(self, obj: Conversation) -> Any:
        return EntryOutput(selectors.conversation_thread(obj), many=True).data


def _conversation(conversation_id: int) -> Conversation:
    return get_object_or_404(
        Conversation.objects.select_related("contact", "connection", "assignee", "department"), pk=conversation_id
    )


class ConversationDetailApi(BaseApi):
    """The conversation with its whole thread (messages, answers, notes and events)."""

    scope = "inbox:read"
    permission = "inbox.view_conversation"

    @api_schema(operation_id="inbox_conversations_retrieve", responses={200: ThreadOutput, **error_responses(404)})
    def get(self, request: Request, conversation_id: int) -> Response:
        conversation = _conversation(conversation_id)
        return Response(ThreadOutput(conversation, context={"request": request}).data)


class ReplyInput(serializers.Serializer):
    text = serializers.CharField(max_length=4096, help_text="The answer, sent on the person's messenger.")


class ConversationReplyApi(BaseApi):
    """Answer the person (sent by a worker; the entry's `delivery` follows its status)."""

    scope = "inbox:write"
    permission = "inbox.reply_conversation"

    @api_schema(
        operation_id="inbox_conversations_reply",
        request=ReplyInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        examples=[OpenApiExample("Answer", value={"text": "Ja, die U3 fährt ab 14 Uhr wieder."}, request_only=True)],
        responses={201: EntryOutput, **error_responses(404, 409)},
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = _conversation(conversation_id)
        return idempotent_create(request, lambda: self._reply(request, conversation))

    def _reply(self, request: Request, conversation: Conversation) -> Response:
        data = ReplyInput(data=request.data)
        data.is_valid(raise_exception=True)
        entry = services.conversation_reply(
            conversation=conversation, author=request.user, text=data.validated_data["text"]
        )
        return created(EntryOutput(entry).data)


class AssignInput(serializers.Serializer):
    assignee = serializers.CharField(
        max_length=150, allow_null=True, help_text="Username of someone who works in the inbox; null: nobody."
    )


class ConversationAssignApi(BaseApi):
    scope = "inbox:write"
    permission = "inbox.change_conversation"

    @api_schema(
        operation_id="inbox_conversations_assign",
        request=AssignInput,
        examples=[OpenApiExample("Assign", value={"assignee": "kundendialog"}, request_only=True)],
        responses={200: ConversationOutput, **error_responses(404)},
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = _conversation(conversation_id)
        data = AssignInput(data=request.data)
        data.is_valid(raise_exception=True)
        username = data.validated_data["assignee"]
        assignee = get_object_or_404(selectors.inbox_agents(), username=username) if username else None
        services.conversation_assign(conversation=conversation, actor=request.user, assignee=assignee)
        return Response(ConversationOutput(_conversation(conversation.pk), context={"request": request}).data)


class ConversationCloseApi(BaseApi):
    scope = "inbox:write"
    permission = "inbox.change_conversation"

    @api_schema(
        operation_id="inbox_conversations_close",
        request=None,
        responses={200: ConversationOutput, **error_responses(404)},
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = _conversation(conversation_id)
        services.conversation_set_status(
            conversation=conversation, actor=request.user, status=Conversation.Status.CLOSED
        )
        return Response(ConversationOutput(_conversation(conversation.pk), context={"request": request}).data)
