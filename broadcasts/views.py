"""Public pages of broadcasts on the tenant domain: tracked links, archive, RSS."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.feedgenerator import Rss201rev2Feed
from django.utils.translation import gettext
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


def _tenant_language(tenant: Any) -> str:
    return str(getattr(tenant, "default_language", "") or settings.LANGUAGE_CODE)


def archive(request: HttpRequest) -> HttpResponse:
    tenant = getattr(request, "tenant", None)
    languages = [getattr(request, "LANGUAGE_CODE", "de"), _tenant_language(tenant)]
    page = Paginator(selectors.broadcast_list_archive(), 20).get_page(request.GET.get("page"))
    items = [
        {
            "broadcast": b,
            **selectors.broadcast_public_item(b, languages),
            "channels": [c for c in b.channels.all() if c.is_public],
        }
        for b in page
    ]
    return render(request, "broadcasts/archive.html", {"page": page, "items": items, "tenant": tenant})


class ArchiveFeed(Feed):
    """RSS of the archive, entirely in the tenant's default language: the channel's language
    element, its title and description, and each item's headline and text. One instance serves
    every request, so the language travels in the active translation, not on `self`."""

    feed_type = Rss201rev2Feed

    def __call__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with translation.override(_tenant_language(getattr(request, "tenant", None))):
            return super().__call__(request, *args, **kwargs)

    def get_object(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return getattr(request, "tenant", None)

    def title(self, tenant: Any) -> str:
        return gettext("%(tenant)s – announcements") % {"tenant": tenant.name}

    def link(self, tenant: Any) -> str:
        return reverse("broadcasts:archive")

    def description(self, tenant: Any) -> str:
        return gettext("%(tenant)s: sent announcements on public channels") % {"tenant": tenant.name}

    def items(self, tenant: Any) -> Any:
        return selectors.broadcast_list_archive()[:50]

    def item_title(self, item: Broadcast) -> str:
        return selectors.broadcast_public_item(item, [translation.get_language()])["headline"]

    def item_description(self, item: Broadcast) -> str:
        return selectors.broadcast_public_item(item, [translation.get_language()])["text"]

    def item_link(self, item: Broadcast) -> str:
        return reverse("broadcasts:archive") + f"#b{item.pk}"

    def item_pubdate(self, item: Broadcast) -> Any:
        return item.send_finished_at
