"""The inbox page of the tenant admin: the list of conversations on the left, the open one on
the right, actions as small POST forms (each redirects back, so the page works without
JavaScript), and a cheap JSON poll that tells the page when to refresh its two panes."""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from channels.models import Channel
from core.admin_sites import tenant_site
from core.errors import ApplicationError
from core.http import request_meta, request_user
from inbox import selectors, services
from inbox.models import Conversation, Department
from messengers.adapters.base import MediaFile, Provider, TemplateRef
from messengers.media import inbound_media_fetch
from messengers.models import Connection, WhatsAppTemplate

PERMISSION = "inbox.view_conversation"
PAGE_SIZE = 50
TEMPLATE_PARAMS_MAX = 10
FILTER_KEYS = ("status", "who", "department", "label", "messenger", "channel", "q")


def _require_view(request: HttpRequest) -> None:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied


def _int_or_none(value: str | None) -> int | None:
    try:
        number = int(value or "")
    except ValueError:
        return None
    return number if 0 < number < 2**63 else None


def _filters(request: HttpRequest) -> tuple[selectors.ListFilters, dict[str, str]]:
    """The list filters from the query string; unknown or malformed values are ignored."""
    raw = {key: request.GET.get(key, "")[:200] for key in FILTER_KEYS}
    status = raw["status"] if raw["status"] in ("open", "waiting", "closed", "all") else "open"
    who = raw["who"] if raw["who"] in ("mine", "unassigned") else ""
    provider = raw["messenger"] if raw["messenger"] in {p.value for p in Provider} else ""
    filters = selectors.ListFilters(
        status=status,
        mine_of=request.user.pk if who == "mine" else None,
        unassigned=who == "unassigned",
        department_id=_int_or_none(raw["department"]),
        label=raw["label"].strip()[:40],
        provider=provider,
        channel_id=_int_or_none(raw["channel"]),
        query=raw["q"],
    )
    kept = {key: value for key, value in raw.items() if value}
    return filters, kept


def _conversation(pk: int) -> Conversation:
    found = Conversation.objects.select_related("contact", "connection", "assignee", "department").filter(pk=pk).first()
    if found is None:
        raise Http404("no such conversation")
    return found


def _rows(conversations: list[Conversation], user: Any) -> list[dict[str, Any]]:
    now = timezone.now()
    rows = []
    for conversation in conversations:
        name, address = selectors.contact_shown(conversation, user)
        rows.append(
            {
                "conversation": conversation,
                "name": name or address,
                "address": address,
                "waiting_minutes": int((now - conversation.waiting_since).total_seconds() // 60)
                if conversation.waiting_since
                else None,
            }
        )
    return rows


def _templates(conversation: Conversation) -> list[WhatsAppTemplate]:
    return list(
        WhatsAppTemplate.objects.filter(connection_id=conversation.connection_id, status="APPROVED").order_by(
            "name", "language"
        )
    )


def inbox_page(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    _require_view(request)
    filters, kept = _filters(request)
    page = Paginator(selectors.conversation_list(filters), PAGE_SIZE).get_page(request.GET.get("page"))
    user = request.user
    context: dict[str, Any] = {
        **tenant_site.each_context(request),
        "title": _("Inbox"),
        "rows": _rows(list(page.object_list), user),
        "page": page,
        "filters": kept,
        "status": filters.status,
        "who": "mine" if filters.mine_of else ("unassigned" if filters.unassigned else ""),
        "query_string": urlencode(kept),
        "departments": list(Department.objects.all()),
        "channels": list(Channel.objects.order_by("name").values_list("pk", "name")),
        "poll_cursor": selectors.inbox_cursor(),
        "can_change": user.has_perm("inbox.change_conversation"),
        "can_reply": user.has_perm("inbox.reply_conversation"),
        "statuses": Conversation.Status.choices,
        "messenger_choices": Connection._meta.get_field("provider").choices,
    }
    if pk is not None:
        conversation = _conversation(pk)
        services.conversation_mark_read(conversation=conversation)
        name, address = selectors.contact_shown(conversation, user)
        needs_template = selectors.reply_needs_template(conversation)
        context.update(
            {
                "conversation": conversation,
                "person_name": name,
                "person_address": address,
                "entries": [selectors.entry_view(entry) for entry in selectors.conversation_thread(conversation)],
                "panel": selectors.person_panel(conversation),
                "canned": selectors.canned_replies_for(conversation),
                "needs_template": needs_template,
                "templates": _templates(conversation) if needs_template else [],
                "template_params": range(1, TEMPLATE_PARAMS_MAX + 1),
                "agents": list(selectors.inbox_agents()),
                "can_forward": user.has_perm("inbox.forward_conversation"),
                "forward_question": selectors.forward_question_draft(conversation),
            }
        )
    partial = request.GET.get("partial")
    if partial in ("list", "thread"):
        return TemplateResponse(request, f"inbox/admin/_{partial}.html", context)
    return TemplateResponse(request, "inbox/admin/inbox.html", context)


def inbox_changes(request: HttpRequest) -> JsonResponse:
    """What changed since the page's last look: {"cursor", "changed": [ids], "unanswered"}. The
    page sends back the cursor it got; without a (valid) one it only learns where to start."""
    _require_view(request)
    cursor = selectors.inbox_cursor()
    since = selectors.poll_cursor_parse(request.GET.get("since", ""))
    changed = selectors.conversations_changed_since(since) if since is not None else []
    return JsonResponse({"cursor": cursor, "changed": changed, "unanswered": selectors.unanswered_count()})


def _back(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    query = request.POST.get("return_query", "")[:1000]
    url = reverse("tenant_admin:inbox_conversation", args=[pk])
    return HttpResponseRedirect(f"{url}?{query}" if query and "\n" not in query else url)


def _template_ref(request: HttpRequest, conversation: Conversation) -> TemplateRef | None:
    template_id = _int_or_none(request.POST.get("template"))
    if template_id is None:
        return None
    template = WhatsAppTemplate.objects.filter(
        pk=template_id, connection_id=conversation.connection_id, status="APPROVED"
    ).first()
    if template is None:
        raise ApplicationError(gettext_noop("This template is not available for this messenger."))
    params = [request.POST.get(f"param_{i}", "").strip() for i in range(1, template.parameter_count + 1)]
    if any(not value for value in params):
        raise ApplicationError(
            gettext_noop("The template needs {count} values; please fill in every field."),
            params={"count": template.parameter_count},
        )
    return TemplateRef(name=template.name, language=template.language, body_params=tuple(params))


@require_POST
def inbox_act(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    _require_view(request)
    conversation = _conversation(pk)
    actor = request_user(request)
    try:
        if action == "reply":
            template = _template_ref(request, conversation)
            services.conversation_reply(
                conversation=conversation, author=actor, text=request.POST.get("text", "")[:4096], template=template
            )
            messages.success(request, _("Answer sent."))
        elif action == "note":
            services.conversation_add_note(
                conversation=conversation, author=actor, text=request.POST.get("text", "")[:4096]
            )
        elif action == "assign":
            raw = request.POST.get("assignee", "")
            assignee = None
            if raw == "me":
                assignee = actor
            elif raw:
                assignee = selectors.inbox_agents().filter(pk=_int_or_none(raw)).first()
                if assignee is None:
                    raise ApplicationError(gettext_noop("This person cannot work in the inbox."))
            services.conversation_assign(conversation=conversation, actor=actor, assignee=assignee)
        elif action == "status":
            services.conversation_set_status(
                conversation=conversation, actor=actor, status=request.POST.get("status", "")[:10]
            )
        elif action == "forward":
            department = Department.objects.filter(pk=_int_or_none(request.POST.get("department")) or 0).first()
            if department is None:
                raise ApplicationError(gettext_noop("Choose a department."))
            forward = services.conversation_forward(
                conversation=conversation,
                actor=actor,
                department=department,
                question=request.POST.get("question", "")[:10_000],
                note=request.POST.get("note", "")[:4000],
                include_contact=request.POST.get("include_contact") == "on",
                meta=request_meta(request),
            )
            messages.success(
                request,
                _("Forwarded to %(department)s as %(reference)s.")
                % {"department": department.name, "reference": forward.reference},
            )
        elif action == "labels":
            labels = request.POST.get("labels", "")[:2000].split(",")
            services.conversation_set_labels(conversation=conversation, actor=actor, labels=labels)
        else:
            raise Http404("no such action")
    except ApplicationError as exc:
        messages.error(request, exc.localized)
    return _back(request, pk)


# --------------------------------------------------------------------------------------------
# Media: the file of an inbound message, fetched from the provider when asked for
# --------------------------------------------------------------------------------------------
NOT_IN_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")
MEDIA_CSP = "default-src 'none'; sandbox"
MEDIA_CACHE = "private, max-age=300"  # the thread's live refresh re-renders the images


def safe_filename(name: str, mime_type: str) -> str:
    """A download name that cannot break the header or a file system: ASCII letters, digits,
    dot, dash and underscore, no leading dots, at most 100 characters; "file" (plus the usual
    extension of a harmless type) when nothing is left."""
    base = re.split(r"[/\\]", name)[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    base = NOT_IN_FILENAME.sub("_", base).strip("._")[:100].strip("._")
    if not base:
        known = mime_type in selectors.INLINE_MEDIA_TYPES or mime_type == "application/pdf"
        base = "file" + ((mimetypes.guess_extension(mime_type) or "") if known else "")
    return base


def _media_response(media: MediaFile) -> HttpResponse:
    mime = selectors.media_type(media.mime_type)
    if mime in selectors.INLINE_MEDIA_TYPES:
        response = HttpResponse(media.content, content_type=mime)
        response["Content-Disposition"] = "inline"
    else:
        response = HttpResponse(media.content, content_type="application/octet-stream")
        response["Content-Disposition"] = f'attachment; filename="{safe_filename(media.filename, mime)}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = MEDIA_CSP
    response["Cache-Control"] = MEDIA_CACHE
    return response


def inbox_media(request: HttpRequest, pk: int) -> HttpResponse:
    """The file of the thread entry `pk` (an inbound message), fetched from the provider through
    the connection's adapter on every request (nothing is stored; the browser may keep it privately
    for five minutes). Only types browsers show safely are answered as themselves; everything
    else (SVG, HTML, PDF, unknown) is a download. A failed fetch is a short page that says why."""
    _require_view(request)
    entry = selectors.inbound_entry(pk)
    if entry is None or entry.inbound is None:
        raise Http404("no such message")
    try:
        media = inbound_media_fetch(inbound=entry.inbound, max_bytes=settings.INBOX_MEDIA_MAX_BYTES)
    except ApplicationError as exc:
        context = {
            **tenant_site.each_context(request),
            "title": _("File not available"),
            "message": exc.localized,
            "conversation_id": entry.conversation_id,
        }
        response = TemplateResponse(
            request, "inbox/admin/media_failed.html", context, status=int(exc.extra.get("http_status", 502))
        )
        response["Cache-Control"] = "no-store"
        return response
    return _media_response(media)


# --------------------------------------------------------------------------------------------
# Public: a department answers through its one-time link (no account)
# --------------------------------------------------------------------------------------------
@csrf_protect
def department_answer(request: HttpRequest, token: str) -> HttpResponse:
    forward = services.forward_from_token(token[:100])
    context: dict[str, Any] = {"tenant": selectors.current_tenant()}
    if forward is None or services.forward_link_expired(forward):
        return TemplateResponse(request, "inbox/department_link_invalid.html", context, status=404)
    context["forward"] = forward
    if forward.answered_at is not None:
        return TemplateResponse(request, "inbox/department_thanks.html", context)
    error = ""
    if request.method == "POST":
        try:
            services.forward_answer(forward=forward, text=request.POST.get("text", "")[:10_000])
        except ApplicationError as exc:
            error = exc.localized
        else:
            return HttpResponseRedirect(request.path)
    context["error"] = error
    return TemplateResponse(request, "inbox/department_answer.html", context)


def inbox_groups(request: HttpRequest) -> HttpResponse:
    """Open conversations that ask much the same, to answer in one go."""
    _require_view(request)
    groups = selectors.conversation_groups()
    user = request.user
    context: dict[str, Any] = {
        **tenant_site.each_context(request),
        "title": _("Answer many at once"),
        "groups": [
            {
                "group": group,
                "people": [
                    {"conversation": c, "name": name or address}
                    for c in group.conversations
                    for name, address in [selectors.contact_shown(c, user)]
                ],
            }
            for group in groups
        ],
        "can_reply": user.has_perm("inbox.reply_conversation"),
    }
    return TemplateResponse(request, "inbox/admin/groups.html", context)


@require_POST
def inbox_group_reply(request: HttpRequest) -> HttpResponse:
    _require_view(request)
    ids = [number for number in (_int_or_none(v) for v in request.POST.getlist("conversation")[:1000]) if number]
    try:
        if not ids:
            raise ApplicationError(gettext_noop("Choose at least one conversation."))
        result = services.conversation_group_reply(
            conversation_ids=ids, author=request_user(request), text=request.POST.get("text", "")[:4096]
        )
    except ApplicationError as exc:
        messages.error(request, exc.localized)
    else:
        messages.success(request, _("Answer sent to %(count)d people.") % {"count": len(result.sent)})
        if result.skipped:
            messages.warning(
                request,
                _(
                    "%(count)d conversations were left out: closed, or WhatsApp outside 24 hours (answer them "
                    "one by one with a template)."
                )
                % {"count": len(result.skipped)},
            )
    return HttpResponseRedirect(reverse("tenant_admin:inbox_groups"))
