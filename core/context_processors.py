from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from core.colours import DEFAULT_BRAND, brand_on_light


def platform(request: HttpRequest) -> dict[str, Any]:
    tenant = getattr(request, "tenant", None)
    is_tenant = tenant is not None and tenant.schema_name != "public"
    return {
        "DEMO_MODE": settings.DEMO_MODE,
        "mfa_waived": getattr(request, "mfa_waived", False),
        "current_tenant": tenant if is_tenant else None,
        "brand_color": getattr(tenant, "primary_color", DEFAULT_BRAND) if is_tenant else DEFAULT_BRAND,
        # the brand colour dark enough for text on the page and for white text on it (WCAG AA)
        "brand_color_readable": brand_on_light(getattr(tenant, "primary_color", DEFAULT_BRAND) if is_tenant else ""),
    }
