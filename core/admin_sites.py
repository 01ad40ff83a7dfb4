"""Two admin sites: the operators' (public schema, platform-wide) and each tenant's own.

They are separate AdminSite instances on purpose: a model registered for operators (say,
Tenant) must never appear in a tenant's admin, where the public tables are still reachable
through PostgreSQL's search_path. Both sites send their login through allauth, so throttling
and two-factor apply to the admin too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import NoReverseMatch, get_script_prefix, path, reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

# Groups of the navigation, in this order: the daily work first, then the site's administration.
NAV_WORK = "work"
NAV_ADMINISTRATION = "administration"
NAV_GROUP_LABELS = {
    NAV_WORK: pgettext_lazy("admin navigation", "Work"),
    NAV_ADMINISTRATION: pgettext_lazy("admin navigation", "Administration"),
}


@dataclass(frozen=True)
class NavEntry:
    """An entry of the admin's navigation by task (an app adds it with `site.add_nav`).

    `url` is a URL name in the site's namespace ("broadcasts_broadcast_changelist") or a callable
    that takes the request and returns a URL; `query` ("to_approve=me") is appended. The entry
    shows when the user has every permission in `permissions` and `allowed(request)` (if given)
    says yes. `badge(request)` returns a number to show beside the label (nothing for 0 or None);
    it must cost at most one query, because every admin page draws the navigation.
    """

    key: str
    label: str | Promise
    url: str | Callable[[HttpRequest], str]
    permissions: Sequence[str] = ()
    allowed: Callable[[HttpRequest], bool] | None = None
    icon: str = ""
    badge: Callable[[HttpRequest], int | None] | None = None
    # what the badge's number counts, read out after it ("3 to approve")
    badge_label: str | Promise = ""
    query: str = ""
    order: int = 100
    group: str = NAV_WORK


@dataclass(frozen=True)
class NavItem:
    """A NavEntry as one request sees it (URL resolved, badge counted, current page marked)."""

    key: str
    label: str | Promise
    href: str
    icon: str
    badge: int
    badge_label: str | Promise
    current: bool
    counts: bool = False  # the entry has a badge (drawn hidden at 0, so a live page can show it later)


@dataclass(frozen=True)
class NavGroup:
    key: str
    label: str | Promise
    items: list[NavItem]


class TaskNavMixin:
    """The navigation by task in place of Django's list of apps (`nav_sidebar`): each app adds its
    entries with `add_nav`, and `each_context` hands the ones the user may see to the template
    as `task_nav`, grouped, with the entry of the current page marked."""

    name: str

    def _nav_entries(self) -> list[NavEntry]:
        entries: list[NavEntry] | None = self.__dict__.get("_nav")
        if entries is None:
            entries = []
            self.__dict__["_nav"] = entries
        return entries

    def add_nav(self, entry: NavEntry) -> None:
        entries = self._nav_entries()
        if any(existing.key == entry.key for existing in entries):
            raise ValueError(f"navigation entry {entry.key!r} is added twice")
        entries.append(entry)

    def nav_for(self, request: HttpRequest) -> list[NavGroup]:
        """The entries this user may see, in order, grouped; computed once per request (a page
        may ask for each_context more than once)."""
        cache_name = f"_task_nav_{self.name}"
        cached: list[NavGroup] | None = getattr(request, cache_name, None)
        if cached is not None:
            return cached
        visible: list[tuple[NavEntry, str]] = []
        for entry in sorted(self._nav_entries(), key=lambda e: (e.order, e.key)):
            if not _nav_allowed(entry, request):
                continue
            href = _nav_href(entry, request, self.name)
            if href:
                visible.append((entry, href))
        current = _current_key(request, visible, index=reverse(f"{self.name}:index"))
        groups: list[NavGroup] = []
        for group_key, group_label in NAV_GROUP_LABELS.items():
            items = [
                NavItem(
                    key=entry.key,
                    label=entry.label,
                    href=href,
                    icon=entry.icon,
                    badge=(entry.badge(request) or 0) if entry.badge else 0,
                    badge_label=entry.badge_label,
                    current=entry.key == current,
                    counts=entry.badge is not None,
                )
                for entry, href in visible
                if entry.group == group_key
            ]
            if items:
                groups.append(NavGroup(key=group_key, label=group_label, items=items))
        setattr(request, cache_name, groups)
        return groups


def _nav_allowed(entry: NavEntry, request: HttpRequest) -> bool:
    user = request.user
    if not all(user.has_perm(permission) for permission in entry.permissions):
        return False
    return entry.allowed is None or entry.allowed(request)


def _nav_href(entry: NavEntry, request: HttpRequest, site_name: str) -> str:
    if callable(entry.url):
        base = entry.url(request)
    else:
        try:
            base = reverse(f"{site_name}:{entry.url}")
        except NoReverseMatch:
            return ""  # the page is not mounted on this site (say, a model admin left out)
    return f"{base}?{entry.query}" if entry.query else base


def _without_script_prefix(url_path: str) -> str:
    """A reversed path as the resolver sees it (request.path_info): without SCRIPT_NAME."""
    prefix = get_script_prefix()
    return "/" + url_path[len(prefix) :] if url_path.startswith(prefix) else url_path


def _current_key(request: HttpRequest, visible: list[tuple[NavEntry, str]], *, index: str) -> str:
    """The entry of the page shown: its path is the request's path or a parent of it (the start
    page only exactly), and its query parameters are all in the request; the most specific
    one wins (more parameters, then the longer path). Only marks the page; access is the views'."""
    here = request.path_info
    start = _without_script_prefix(index)
    best: tuple[int, int] = (-1, -1)
    found = ""
    for entry, href in visible:
        parts = urlsplit(href)
        entry_path = _without_script_prefix(parts.path)
        exact_only = entry_path == start  # every admin page is below the start page
        if not (here == entry_path or (not exact_only and here.startswith(entry_path))):
            continue
        params = parse_qsl(parts.query)
        if any(request.GET.get(key) != value for key, value in params):
            continue
        rank = (len(params), len(entry_path))
        if rank > best:
            best, found = rank, entry.key
    return found


class OperatorAdminSite(TaskNavMixin, admin.AdminSite):
    site_header = _("Messenger-Newsletter")
    site_title = _("Operator")
    index_title = _("Platform")
    # the block Django draws its sidebar in holds our navigation (templates/admin/base_site.html)
    enable_nav_sidebar = True

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        context["admin_site_kind"] = "operator"
        context["task_nav"] = self.nav_for(request) if self.has_permission(request) else []
        return context

    def has_permission(self, request: HttpRequest) -> bool:
        tenant = getattr(request, "tenant", None)
        return bool(
            tenant is not None and tenant.schema_name == "public" and request.user.is_active and request.user.is_staff
        )


@dataclass(frozen=True)
class AdminPage:
    """A page of a tenant's admin that belongs to no model (an app adds it with `add_page`)."""

    route: str
    view: Callable[..., HttpResponse]  # takes the request, plus the route's parameters
    name: str
    permission: str
    # a template variable that tells whether the user may open the page (for the page's link)
    context_flag: str
    # False: Django's never_cache headers. True: the view sets its own Cache-Control (a file
    # the browser may keep privately for a while, e.g. the inbox's media).
    cacheable: bool = False


class TenantAdminSite(TaskNavMixin, admin.AdminSite):
    site_title = _("Newsletter")
    index_title = _("Overview")
    enable_nav_sidebar = True

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)
        self._pages: list[AdminPage] = []
        self._landings: list[Callable[[HttpRequest], str | None]] = []

    def add_page(self, page: AdminPage) -> None:
        """Mount an app's own page (say, the tenant's settings) at admin/<route>, behind the admin login."""
        self._pages.append(page)

    def add_landing(self, landing: Callable[[HttpRequest], str | None]) -> None:
        """Where a user lands instead of the start page: `landing(request)` returns a URL for
        the users whose work is elsewhere (inbox agents land on the inbox), else None."""
        self._landings.append(landing)

    def index(  # type: ignore[override]  # a landing redirect is no TemplateResponse
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        for landing in self._landings:
            url = landing(request)
            if url:
                return HttpResponseRedirect(url)
        return super().index(request, extra_context)

    def has_permission(self, request: HttpRequest) -> bool:
        tenant = getattr(request, "tenant", None)
        return bool(
            tenant is not None and tenant.schema_name != "public" and request.user.is_active and request.user.is_staff
        )

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        tenant = getattr(request, "tenant", None)
        context["site_header"] = getattr(tenant, "name", "") or self.site_header
        context["admin_site_kind"] = "tenant"
        context["task_nav"] = self.nav_for(request) if self.has_permission(request) else []
        for page in self._pages:
            context[page.context_flag] = request.user.has_perm(page.permission)
        return context

    def get_urls(self) -> list[Any]:
        pages = [
            path(page.route, self.admin_view(page.view, cacheable=page.cacheable), name=page.name)
            for page in self._pages
        ]
        return [*pages, *super().get_urls()]


operator_site = OperatorAdminSite(name="operator_admin")
tenant_site = TenantAdminSite(name="tenant_admin")
operator_site.login = secure_admin_login(operator_site.login)  # type: ignore[method-assign]
tenant_site.login = secure_admin_login(tenant_site.login)  # type: ignore[method-assign]


class ReadOnlyAdminMixin:
    """For records nobody edits in the admin (audit log, ledger, deliveries, provider traffic):
    listed and shown, never added, changed or deleted. Works for model admins and inlines."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def admin_object_or_404(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, object_id: str, queryset: QuerySet[Any] | None = None
) -> Model:
    """The object an admin URL names (from the admin's own queryset unless one is given), or 404.

    For custom change views: get_object_or_404(Model, pk=object_id) lets ids that are no id at
    all ("abc", "1/2", 5,000 digits, a NUL byte) escape as a 500."""
    try:
        pk = model_admin.model._meta.pk.to_python(unquote(object_id))
    except (ValidationError, ValueError, TypeError):
        raise Http404("no such object") from None
    rows = queryset if queryset is not None else model_admin.get_queryset(request)
    found: Model | None = rows.filter(pk=pk).first()
    if found is None:
        raise Http404("no such object")
    return found
