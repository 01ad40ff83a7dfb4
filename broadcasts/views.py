"""Public pages of broadcasts on the tenant domain: tracked links, archive, RSS."""

from __future__ import annotations

from typing import Any

from django.contrib.syndication.views import Feed
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.feedgenerator import Rss201rev2Feed
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from broadcasts import links, selectors
from broadcasts.models import Broadcast


@never_cache
@require_http_methods(["GET", "HEAD"])
def tracked_link(request: HttpRequest, token: str) -> HttpResponse:
    target = links.link_click(
        token=token, method=request.method or "GET", user_agent=request.headers.get("User-Agent", "")
    )
    if target is None:
        raise Http404("unknown link")
    response = HttpResponseRedirect(target)
    response["X-Robots-Tag"] = "noindex"
    response["Referrer-Policy"] = "no-referrer"
    return response


def _text(broadcast: Broadcast, language: str) -> str:
    variants = {v.language: v.body for v in broadcast.variants.all()}
    return variants.get(language) or variants.get("de") or next(iter(variants.values()), "")


def archive(request: HttpRequest) -> HttpResponse:
    language = getattr(request, "LANGUAGE_CODE", "de")
    page = Paginator(selectors.broadcast_list_archive(), 20).get_page(request.GET.get("page"))
    items = [
        {"broadcast": b, "text": _text(b, language), "channels": [c for c in b.channels.all() if c.is_public]}
        for b in page
    ]
    return render(
        request, "broadcasts/archive.html", {"page": page, "items": items, "tenant": getattr(request, "tenant", None)}
    )


class ArchiveFeed(Feed):
    feed_type = Rss201rev2Feed

    def get_object(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        self.request = request
        return getattr(request, "tenant", None)

    def title(self, tenant: Any) -> str:
        return f"{tenant.name} – Newsletter"

    def link(self, tenant: Any) -> str:
        return reverse("broadcasts:archive")

    def description(self, tenant: Any) -> str:
        return f"{tenant.name}: sent announcements on public channels"

    def items(self, tenant: Any) -> Any:
        return selectors.broadcast_list_archive()[:50]

    def item_title(self, item: Broadcast) -> str:
        return item.title

    def item_description(self, item: Broadcast) -> str:
        return _text(item, "de")

    def item_link(self, item: Broadcast) -> str:
        return reverse("broadcasts:archive") + f"#b{item.pk}"

    def item_pubdate(self, item: Broadcast) -> Any:
        return item.send_finished_at
