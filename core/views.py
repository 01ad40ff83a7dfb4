"""Operational endpoints: /healthz (database and queue; answers everyone, so it tells no versions)
and /metrics (Prometheus; every tenant's figures, so production requires METRICS_TOKEN)."""

from __future__ import annotations

import posixpath
import time
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django.views.static import serve
from django_q.brokers import get_broker
from django_q.status import Stat

from core import metrics


def _check_database() -> dict[str, object]:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _check_queue() -> dict[str, object]:
    broker = get_broker()
    started = time.perf_counter()
    reachable = bool(broker.ping())
    # no broker.info(): it names the broker's version, which is nobody's business outside
    result: dict[str, object] = {
        "ok": reachable,
        "waiting": broker.queue_size() if reachable else None,
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }
    try:
        result["clusters"] = len(Stat.get_all(broker=broker))
    except Exception:  # the stats live in the cache; their absence is not a broker failure
        result["clusters"] = None
    return result


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    checks: dict[str, object] = {}
    healthy = True
    for name, check in (("database", _check_database), ("queue", _check_queue)):
        try:
            checks[name] = check()
        except Exception as exc:  # report, never raise: this endpoint must answer
            checks[name] = {"ok": False, "error": exc.__class__.__name__}
        healthy = healthy and bool(checks[name]["ok"])  # type: ignore[index]
    return JsonResponse({"status": "ok" if healthy else "fail", "checks": checks}, status=200 if healthy else 503)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if token and not constant_time_compare(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return HttpResponse(
            "metrics need Authorization: Bearer <METRICS_TOKEN>\n", status=401, content_type="text/plain"
        )
    return HttpResponse(metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")


def media(request: HttpRequest, path: str) -> HttpResponseBase:
    """Serve uploaded files. Each tenant's files live under MEDIA_ROOT/<schema>/ and are only
    served on that tenant's own domain; branding (logos) is public on every domain.

    The path is normalised first and the folder it names decides; the file is then served from
    that folder alone, so no spelling of `..` (plain or percent-encoded; the server decoded the URL
    once, and it is never decoded again) reaches another tenant's folder.

    Messenger providers fetch broadcast images by URL, so this must work in production too;
    put a CDN or the web server in front of /media/ when volume grows.
    """
    tenant = getattr(request, "tenant", None)
    schema = tenant.schema_name if tenant is not None else "public"
    folder, rest = _media_folder_and_rest(path)
    if folder not in ("branding", schema) or not rest:
        raise Http404("not found")
    try:
        response = serve(request, rest, document_root=str(Path(settings.MEDIA_ROOT) / folder))
    except (OSError, ValueError):  # a name too long for the file system, or similar
        raise Http404("not found") from None
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"
    return response


def _media_folder_and_rest(path: str) -> tuple[str, str]:
    """("test_a", "broadcasts/x.png") for "test_a/broadcasts/x.png"; ("", "") for anything that
    leaves MEDIA_ROOT or holds a NUL byte."""
    if "\x00" in path:
        return "", ""
    normalised = posixpath.normpath(path).lstrip("/")
    if normalised in (".", "..") or normalised.startswith("../"):
        return "", ""
    folder, _, rest = normalised.partition("/")
    return folder, rest
