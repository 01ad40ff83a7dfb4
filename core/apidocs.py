"""The OpenAPI schema of the REST API and its two readers, Swagger UI and ReDoc, served from our
own static files (drf-spectacular-sidecar): no CDN, and no inline script, so the pages live with
the site's Content-Security-Policy as it is (core/static/core/api-docs.js starts the readers).
Reading the schema and the docs needs no key: they describe the API, not a tenant's data."""

from __future__ import annotations

from csp.constants import SELF
from csp.decorators import csp_replace
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """The schema's security scheme for API keys (named by path: core imports no app)."""

    target_class = "accounts.apiauth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (mnl_…), created by an admin in the tenant's admin under API keys.",
        }


class SchemaApi(SpectacularAPIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []
    throttle_classes: list[type] = []


# Stricter than the site's policy: images from us only. ReDoc's bundle shows a logo from Redocly's
# CDN; refused here, it hides it (its onError), so the docs never reach out to a CDN.
DOCS_CSP = {"img-src": [SELF, "data:"]}


@csp_replace(DOCS_CSP)
def swagger_ui(request: HttpRequest) -> HttpResponse:
    return render(request, "core/api/swagger.html", {"schema_url": reverse("api-schema")})


@csp_replace(DOCS_CSP)
def redoc(request: HttpRequest) -> HttpResponse:
    return render(request, "core/api/redoc.html", {"schema_url": reverse("api-schema")})


urlpatterns = [
    path("schema/", SchemaApi.as_view(), name="api-schema"),
    path("docs/", swagger_ui, name="api-docs"),
    path("redoc/", redoc, name="api-redoc"),
]
