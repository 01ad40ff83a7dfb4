"""The REST API's shared plumbing that needs no app of ours: the one error format, cursor
pagination, the idempotency request fingerprint, and the base of every API class.

Every error answer has the same shape, whatever raised it (DRF's own validation and
authentication errors, Django's 404 and permission errors, a service's ApplicationError):

    {"error": {"code": "invalid", "message": "…", "fields": {"name": ["…"]}}}

`message` is in the request's language (Accept-Language: German or English); `fields` appears
for validation errors only. Keys, scopes and idempotency records live in accounts
(accounts.apiauth), since they are tables of each tenant's schema and core has none."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext, gettext_noop
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from core.errors import ApplicationError

INVALID = gettext_noop("The request is not valid; see the fields for details.")
NOT_FOUND = gettext_noop("Not found.")


def _flatten(detail: Any) -> dict[str, list[str]]:
    """DRF's nested error detail as {"field": ["message", …]} ("items.0.name" for nested ones)."""
    fields: dict[str, list[str]] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                walk(inner, f"{path}.{name}" if path else str(name))
        elif isinstance(value, list) and value and not all(isinstance(v, str) for v in value):
            for index, inner in enumerate(value):
                walk(inner, f"{path}.{index}" if path else str(index))
        else:
            messages = value if isinstance(value, list) else [value]
            fields.setdefault(path or "non_field_errors", []).extend(str(m) for m in messages)

    walk(detail, "")
    return fields


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """REST_FRAMEWORK's EXCEPTION_HANDLER: every error in the one format."""
    if isinstance(exc, ApplicationError):
        # a subclass may name its own code and status (409 for an idempotency conflict)
        code = getattr(exc, "code", "") or "rejected"
        status_code = getattr(exc, "status_code", 0) or 400
        fields = {name: [str(m) for m in msgs] for name, msgs in exc.extra.get("fields", {}).items()}
        return Response(error_body(code, exc.localized, fields or None), status=status_code)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(gettext(NOT_FOUND))
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None  # a bug: a 500, which the tests and schemathesis look for
    assert isinstance(exc, exceptions.APIException)
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("invalid", gettext(INVALID), _flatten(exc.detail))
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        response.data = error_body(str(code), str(detail))
    return response


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code: invalid, rejected, conflict, not_found, …")
    message = serializers.CharField(help_text="What went wrong, in the request's language (Accept-Language).")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Per field: what is wrong with it (validation errors only).",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class Cursor(CursorPagination):
    """Cursor pagination over the newest first (stable while rows are added); `page_size` up to 200."""

    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"
    ordering = "-id"

    def decode_cursor(self, request: Request) -> Any:
        """A cursor that is not one of ours is a bad request (400), not a missing page (404)."""
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound as exc:
            raise exceptions.ValidationError({self.cursor_query_param: [exc.detail]}) from None


def request_fingerprint(request: Request) -> str:
    """SHA-256 of what makes two creates the same request: method, path and body. JSON bodies
    are normalised (key order and spacing do not matter); for uploads the form fields and the
    files' contents count, read in chunks (the body of an upload may exceed what Django reads
    into memory). Call it before touching `request.data` for JSON bodies."""
    content_type = (request.content_type or "").split(";")[0].strip()
    digest = hashlib.sha256()

    def add(part: bytes) -> None:
        digest.update(len(part).to_bytes(8, "big") + part)

    add((request.method or "").encode())
    add(request.path.encode())
    add(content_type.encode())
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        for name in sorted(request.data.keys()):
            if name in request.FILES:
                continue
            add(name.encode())
            for value in request.data.getlist(name):
                add(str(value).encode())
        for name in sorted(request.FILES.keys()):
            add(name.encode())
            for upload in request.FILES.getlist(name):
                file_digest = hashlib.sha256()
                for chunk in upload.chunks():
                    file_digest.update(chunk)
                upload.seek(0)
                add(file_digest.digest())
        return digest.hexdigest()
    body = request.body
    if content_type == "application/json":
        try:
            body = json.dumps(json.loads(body or b"null"), sort_keys=True, separators=(",", ":")).encode()
        except ValueError:
            pass
    add(body)
    return digest.hexdigest()


class BaseApi(APIView):
    """Base of every API class: one class per operation (HackSoft), the scope a key needs
    (`scope`) and the model permission the acting user's roles need (`permission`), checked by
    accounts.apiauth.ScopeAndRole."""

    scope: str = ""
    permission: str = ""


def created(data: Any) -> Response:
    return Response(data, status=status.HTTP_201_CREATED)


IDEMPOTENCY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Any unique string (a UUID) of at most 255 characters. A retry with the same key and body gets "
        "the first answer again (header Idempotent-Replayed: true); with another body a 409. Kept for a day."
    ),
)


def error_responses(*statuses: int) -> dict[int, Any]:
    """The error answers an operation documents: always 400, 401, 403 and 429, plus `statuses`."""
    return {code: ErrorSerializer for code in sorted({400, 401, 403, 429, *statuses})}


class ListApi(ListAPIView):
    """Base of list operations: the selector's queryset (`get_queryset`), django-filter's
    `filterset_class`, cursor pagination, `serializer_class` for each row."""

    scope: str = ""
    permission: str = ""
    pagination_class = Cursor


@csrf_exempt  # a POST to a path that does not exist is a 404, whoever sends it
def api_not_found(request: Any, *args: Any, **kwargs: Any) -> Any:
    """Any other path under /api/v1/: the API's 404 in its own format, not the site's HTML page."""
    from django.http import JsonResponse

    return JsonResponse(error_body("not_found", gettext(NOT_FOUND)), status=404)


ERROR_EXAMPLES = [
    OpenApiExample(
        "Invalid input",
        value=error_body("invalid", INVALID, {"state": ['"bogus" is not a valid choice.']}),
        response_only=True,
        status_codes=["400"],
    ),
    OpenApiExample(
        "A rule said no",
        value=error_body("rejected", "This broadcast is Sent; that step is not possible now."),
        response_only=True,
        status_codes=["400"],
    ),
    OpenApiExample(
        "No or a revoked key",
        value=error_body("authentication_failed", "This API key is unknown, revoked or expired."),
        response_only=True,
        status_codes=["401"],
    ),
    OpenApiExample(
        "Scope missing",
        value=error_body("permission_denied", "This API key lacks the scope “broadcasts:approve”."),
        response_only=True,
        status_codes=["403"],
    ),
    OpenApiExample(
        "Too many requests",
        value=error_body("throttled", "Request was throttled. Expected available in 12 seconds."),
        response_only=True,
        status_codes=["429"],
    ),
]


def api_schema(**kwargs: Any) -> Any:
    """drf-spectacular's extend_schema with the error format's examples added to every operation."""
    examples = [*kwargs.pop("examples", []), *ERROR_EXAMPLES]
    return extend_schema(examples=examples, **kwargs)
