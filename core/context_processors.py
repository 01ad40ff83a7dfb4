from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def platform(request: HttpRequest) -> dict[str, Any]:
    tenant = getattr(request, "tenant", None)
    is_tenant = tenant is not None and tenant.schema_name != "public"
    return {
        "DEMO_MODE": settings.DEMO_MODE,
        "mfa_waived": getattr(request, "mfa_waived", False),
        "current_tenant": tenant if is_tenant else None,
        "brand_color": getattr(tenant, "primary_color", "#1f4e8c") if is_tenant else "#1f4e8c",
    }
