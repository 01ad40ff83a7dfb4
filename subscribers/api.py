"""REST API of subscribers: add one with the proof of consent, look up by address, erase (GDPR),
and import a CSV/XLSX file with the import the admin uses, with its per-row report (docs/api.md)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.apiauth import acting_meta, idempotent_create
from channels.models import Channel
from core.rest import IDEMPOTENCY_PARAMETER, BaseApi, api_schema, created, error_responses
from messengers.models import PROVIDER_CHOICES, Contact
from subscribers import services
from subscribers.addresses import region_for_timezone
from subscribers.models import Language, Source, Subscriber, SubscriberImport, Subscription
from subscribers.selectors import current_tenant
from subscribers.services.imports.validation import normalise_address


def _people() -> QuerySet[Subscriber]:
    return Subscriber.objects.prefetch_related(
        Prefetch("subscriptions", queryset=Subscription.objects.filter(status=Subscription.Status.ACTIVE)),
        Prefetch("contacts", queryset=Contact.objects.select_related("connection")),
    )


class AddressOutput(serializers.Serializer):
    provider = serializers.CharField()
    address = serializers.CharField()


class SubscriberOutput(serializers.ModelSerializer):
    channels = serializers.SerializerMethodField(help_text="Ids of the channels subscribed to.")
    addresses = serializers.SerializerMethodField()

    class Meta:
        model = Subscriber
        fields = ["id", "name", "language", "status", "channels", "addresses", "created_at"]

    def get_channels(self, obj: Subscriber) -> list[int]:
        return sorted(s.channel_id for s in obj.subscriptions.all())

    def get_addresses(self, obj: Subscriber) -> list[dict[str, str]]:
        return [{"provider": c.connection.provider, "address": c.address} for c in obj.contacts.all()]


class SubscriberCreateInput(serializers.Serializer):
    provider = serializers.ChoiceField(choices=PROVIDER_CHOICES)
    address = serializers.CharField(max_length=254, help_text="Phone number, e-mail address or Telegram id.")
    channels = serializers.PrimaryKeyRelatedField(many=True, queryset=Channel.objects.all())
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    language = serializers.ChoiceField(choices=Language.choices, required=False, default="")
    consent_at = serializers.DateTimeField(help_text="When the person gave consent.")
    consent_evidence = serializers.CharField(
        max_length=300, help_text="The proof you hold: the form, the list and where it is kept."
    )


class SubscriberCreateApi(BaseApi):
    """Add a person with the consent your system recorded; each channel gets a consent ledger
    entry (source "api"). A known address gains the channels; nobody is duplicated."""

    scope = "subscribers:write"
    permission = "subscribers.add_subscriber"

    @api_schema(
        operation_id="subscribers_create",
        request=SubscriberCreateInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: SubscriberOutput, **error_responses(409)},
        examples=[
            OpenApiExample(
                "Collected at a stand",
                value={
                    "provider": "sms",
                    "address": "+49 170 1234567",
                    "channels": [1],
                    "name": "Erika Muster",
                    "consent_at": "2026-09-12T14:30:00+02:00",
                    "consent_evidence": "Paper form 2026-09-12, Schlossplatz stand, folder 7",
                },  # fmt: skip
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        return idempotent_create(request, lambda: self._create(request))

    def _create(self, request: Request) -> Response:
        data = SubscriberCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        result = services.subscriber_create_with_consent(
            provider=values["provider"], address=values["address"], channels=values["channels"],
            consent_at=values["consent_at"], consent_evidence=values["consent_evidence"], name=values["name"],
            language=values["language"], actor=request.user, meta=acting_meta(request),
        )  # fmt: skip
        return created(SubscriberOutput(_people().get(pk=result.subscriber.pk)).data)


class SubscriberLookupApi(BaseApi):
    """The person with this address (on any messenger); 404 if nobody has it."""

    scope = "subscribers:read"
    permission = "subscribers.view_subscriber"

    @api_schema(
        operation_id="subscribers_lookup",
        parameters=[
            OpenApiParameter("address", str, required=True, description="+49 170 1234567, a@b.de …"),
            OpenApiParameter("provider", str, enum=[p for p, _ in PROVIDER_CHOICES], required=False),
        ],
        responses={200: SubscriberOutput, **error_responses(404)},
    )
    def get(self, request: Request) -> Response:
        address = request.query_params.get("address", "").strip()[:254]
        provider = request.query_params.get("provider", "")
        region = region_for_timezone(getattr(current_tenant(), "timezone", "") or "Europe/Berlin")
        providers = [provider] if provider in dict(PROVIDER_CHOICES) else [p for p, _ in PROVIDER_CHOICES]
        candidates = {a for p in providers if (a := normalise_address(p, address, region))} if address else set()
        contacts = Contact.objects.filter(address__in=candidates, subscriber__isnull=False)
        if provider in dict(PROVIDER_CHOICES):
            contacts = contacts.filter(connection__provider=provider)
        subscriber = get_object_or_404(
            _people().exclude(status=Subscriber.Status.ERASED), pk__in=contacts.values("subscriber_id")[:1]
        )
        return Response(SubscriberOutput(subscriber).data)


class SubscriberEraseApi(BaseApi):
    """Erase a person's data (GDPR): contacts, conversations and delivery addresses everywhere."""

    scope = "subscribers:write"
    permission = "subscribers.gdpr_subscriber"

    @api_schema(
        operation_id="subscribers_erase",
        request=None,
        responses={
            200: inline_serializer(
                "Erasure", {"contacts": serializers.IntegerField(), "subscriptions_ended": serializers.IntegerField()}
            ),
            **error_responses(404),
        },
    )
    def post(self, request: Request, subscriber_id: int) -> Response:
        subscriber = get_object_or_404(Subscriber.objects.all(), pk=subscriber_id)
        summary = services.subscriber_erase(
            subscriber=subscriber, source=Source.API, actor=request.user, meta=acting_meta(request)
        )
        return Response({"contacts": summary.contacts, "subscriptions_ended": summary.subscriptions_ended})


class ImportOutput(serializers.ModelSerializer):
    class Meta:
        model = SubscriberImport
        fields = [
            "id", "filename", "file_format", "status", "total_rows", "processed_rows", "subscribers_created",
            "subscribers_matched", "subscriptions_created", "rows_rejected", "errors", "failure", "created_at",
            "started_at", "finished_at",
        ]  # fmt: skip
        extra_kwargs = {"errors": {"help_text": "Rejected rows: [{row, column, message}] (the per-row report)."}}


class ImportInput(serializers.Serializer):
    file = serializers.FileField(help_text="CSV or XLSX, the columns of the admin's import (docs/operations.md).")
    channels = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Channel.objects.all(), required=False, help_text="Channels for rows without any."
    )
    explicit_consent = serializers.BooleanField(required=False, default=False)


class SubscriberImportCreateApi(BaseApi):
    """Upload a file; the import runs in the background. Poll the import for its progress and report."""

    scope = "subscribers:write"
    permission = "subscribers.import_subscribers"
    parser_classes = [MultiPartParser]

    @api_schema(
        operation_id="subscribers_import_create",
        request={"multipart/form-data": ImportInput},
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: ImportOutput, **error_responses(409, 415)},
    )
    def post(self, request: Request) -> Response:
        return idempotent_create(request, lambda: self._create(request))

    def _create(self, request: Request) -> Response:
        data = ImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        job = services.subscriber_import_create(
            filename=upload.name or "import.csv", data=upload.read(),
            default_channels=data.validated_data.get("channels", []),
            explicit_consent=data.validated_data["explicit_consent"], actor=request.user, meta=acting_meta(request),
        )  # fmt: skip
        return created(ImportOutput(job).data)


class SubscriberImportDetailApi(BaseApi):
    scope = "subscribers:write"
    permission = "subscribers.import_subscribers"

    @api_schema(operation_id="subscribers_import_retrieve", responses={200: ImportOutput, **error_responses(404)})
    def get(self, request: Request, import_id: int) -> Response:
        return Response(ImportOutput(get_object_or_404(SubscriberImport.objects.defer("data"), pk=import_id)).data)
