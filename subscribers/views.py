"""Public pages for citizens on the tenant's domain: subscribe page, e-mail double opt-in, QR
codes and posters, the preference page and one-click unsubscribe (RFC 8058).

No login anywhere: personal pages are reached through signed links (subscribers.links), which
are only valid on the tenant that issued them. Views validate input and call services.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib import messages
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from channels.selectors import channel_get_public
from core.errors import ApplicationError
from core.http import client_network, request_user
from subscribers import links, qr, selectors, services
from subscribers.forms import EmailSubscribeForm, PreferencesForm
from subscribers.models import Poster, Source, Subscriber

# Per client IP and tenant: enough for a family or an office behind one address, too few to
# turn the form into a mailing machine.
FORM_POSTS_PER_IP_PER_HOUR = 10
FORM_RATE_LIMITED = _lazy("Too many sign-ups from your network. Please try again in an hour.")
QR_MAX_AGE = 3600


def _language(request: HttpRequest) -> str:
    return "en" if getattr(request, "LANGUAGE_CODE", "de").startswith("en") else "de"


def _tenant(request: HttpRequest) -> Any:
    return getattr(request, "tenant", None)


def _base_context(request: HttpRequest) -> dict[str, Any]:
    tenant = _tenant(request)
    return {"tenant": tenant, "privacy_url": getattr(tenant, "privacy_notice_url", "") or ""}


def _ip_allowed(request: HttpRequest) -> bool:
    address = client_network(request)  # the client behind our proxies, an IPv6 client's /64
    key = "subscribers:form-ip:" + hashlib.sha256(address.encode()).hexdigest()[:32]
    cache.add(key, 0, timeout=3600)
    try:
        count = cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=3600)
        count = 1
    return count <= FORM_POSTS_PER_IP_PER_HOUR


def _sandbox_links(request: HttpRequest, offers: list[selectors.ChannelOffer]) -> dict[int, str]:
    """Phone-simulator links for signed-in staff only (citizens never see the sandbox)."""
    user = request_user(request)
    if user is None or not user.is_staff or not user.has_perm("messengers.use_sandbox"):
        return {}
    found: dict[int, str] = {}
    for offer in offers:
        sandbox = offer.sandbox
        if sandbox is not None:
            found[sandbox.connection_id] = reverse("tenant_admin:messengers_phones", args=[sandbox.connection_id])
    return found


def _email_form(
    request: HttpRequest, offers: list[selectors.ChannelOffer], poster: Poster | None, data: Any = None
) -> EmailSubscribeForm | None:
    choices = [(str(o.channel.pk), o.channel.name) for o in offers if o.email_connection_id]
    if not choices:
        return None
    language = _language(request)
    initial = {
        "language": language,
        "channels": [str(o.channel.pk) for o in offers if o.selected and o.email_connection_id],
        "poster": poster.code if poster is not None else "",
    }
    return EmailSubscribeForm(
        data, initial=initial, channel_choices=choices, consent_label=selectors.consent_text_shown(language)
    )


def _subscribe_page(
    request: HttpRequest, *, form: EmailSubscribeForm | None = None, status: int = 200, error: str = ""
) -> HttpResponse:
    poster = selectors.poster_by_code(request.GET.get("poster", "") or request.POST.get("poster", ""))
    offers = selectors.channel_offers(poster=poster, selected_slug=request.GET.get("channel", ""))
    context = {
        **_base_context(request),
        "offers": offers,
        "poster": poster,
        "form": form if form is not None else _email_form(request, offers, poster),
        "sandbox_links": _sandbox_links(request, offers),
        "email_demo": any(o.email_demo for o in offers),
        "error": error,
    }
    return render(request, "subscribers/subscribe.html", context, status=status)


@require_GET
def subscribe_page(request: HttpRequest) -> HttpResponse:
    return _subscribe_page(request)


@require_http_methods(["GET", "POST"])
def email_subscribe(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return HttpResponseRedirect(reverse("subscribers:subscribe"))
    if not _ip_allowed(request):
        return _subscribe_page(request, status=429, error=str(FORM_RATE_LIMITED))
    poster = selectors.poster_by_code(request.POST.get("poster", ""))
    offers = selectors.channel_offers(poster=poster)
    form = _email_form(request, offers, poster, data=request.POST)
    if form is None:
        raise Http404("This organisation offers no topics by e-mail.")
    if not form.is_valid():
        return _subscribe_page(request, form=form, status=400)
    if form.cleaned_data["website"]:
        return HttpResponseRedirect(reverse("subscribers:email_sent"))  # a bot; look the same
    channel_ids = [int(pk) for pk in form.cleaned_data["channels"]]
    source, detail = Source.WEB_FORM, ""
    if poster is not None and poster.channel_id in channel_ids:
        source, detail = Source.QR, poster.code
    try:
        services.email_subscription_request(
            email=form.cleaned_data["email"], channel_ids=channel_ids, language=form.cleaned_data["language"],
            source=source, source_detail=detail,
        )  # fmt: skip
    except ApplicationError as exc:
        form.add_error(None, exc.localized)
        return _subscribe_page(request, form=form, status=400)
    return HttpResponseRedirect(reverse("subscribers:email_sent"))


@require_GET
def email_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "subscribers/email_sent.html", _base_context(request))


@never_cache
@require_http_methods(["GET", "POST"])
def email_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks (mail scanners open links, and they must not subscribe anyone); POST confirms."""
    if request.method == "GET":
        return render(request, "subscribers/email_confirm.html", {**_base_context(request), "token": token})
    confirmation = services.email_subscription_confirm(token=token)
    if confirmation is None:
        return render(request, "subscribers/link_invalid.html", _base_context(request), status=404)
    context = {**_base_context(request), "preferences_url": links.preferences_url(confirmation.subscriber)}
    return render(request, "subscribers/email_confirmed.html", context)


# --------------------------------------------------------------------------------------------
# QR codes and posters
# --------------------------------------------------------------------------------------------
def _qr_response(request: HttpRequest, slug: str, provider: str, kind: str) -> HttpResponse:
    channel = channel_get_public(slug)
    if channel is None or provider not in selectors.POSTER_PROVIDERS:
        raise Http404("No such QR code.")
    code = request.GET.get("poster", "")
    if code:
        poster = selectors.poster_by_code(code)
        # any messenger of the poster's channel: a visitor from a web poster who scans the
        # WhatsApp code on the subscribe page is still attributed to that poster
        if poster is None or poster.channel_id != channel.pk:
            raise Http404("No such poster.")
        code = poster.code
    payload = qr.qr_payload(channel=channel, provider=provider, poster_code=code)
    if not payload:
        raise Http404("This channel cannot be joined that way.")
    if kind == "svg":
        response = HttpResponse(qr.qr_svg(payload, title=channel.name), content_type="image/svg+xml")
    else:
        response = HttpResponse(qr.qr_png(payload), content_type="image/png")
    name = "-".join(part for part in (channel.slug, provider, code.lower()) if part)
    disposition = "attachment" if request.GET.get("download") else "inline"
    response["Content-Disposition"] = f'{disposition}; filename="{name}.{kind}"'
    patch_cache_control(response, public=True, max_age=QR_MAX_AGE)
    return response


@require_GET
def qr_svg(request: HttpRequest, slug: str, provider: str) -> HttpResponse:
    return _qr_response(request, slug, provider, "svg")


@require_GET
def qr_png(request: HttpRequest, slug: str, provider: str) -> HttpResponse:
    return _qr_response(request, slug, provider, "png")


@require_GET
def poster_page(request: HttpRequest, code: str) -> HttpResponse:
    """A printable A4 poster: the channel, a large QR code with the poster's own code, and the
    same in words for people without a camera."""
    poster = selectors.poster_by_code(code)
    if poster is None or not poster.channel.is_public or not poster.channel.is_active:
        raise Http404("No such poster.")
    channel = poster.channel
    payload = qr.qr_payload(channel=channel, provider=poster.provider, poster_code=poster.code)
    offer = selectors.channel_offers(poster=poster, selected_slug=channel.slug)
    channel_offer = next((o for o in offer if o.channel.pk == channel.pk), None)
    messenger = None
    if channel_offer is not None:
        messenger = next((m for m in channel_offer.messengers if m.provider == poster.provider), None)
    context = {
        **_base_context(request),
        "poster": poster,
        "channel": channel,
        "available": bool(payload),
        "messenger": messenger,
        "subscribe_url": links.subscribe_page_url(channel_slug=channel.slug, poster_code=poster.code),
        "keyword_text": links.keyword_message(channel_offer.keyword if channel_offer else "", poster.code),
    }
    return render(request, "subscribers/poster.html", context, status=200 if payload else 410)


# --------------------------------------------------------------------------------------------
# Personal pages (signed links)
# --------------------------------------------------------------------------------------------
def _person(token: str, purpose: str) -> Subscriber:
    subscriber = links.subscriber_from_token(token, purpose)
    if subscriber is None:
        raise _InvalidLinkError
    return subscriber


class _InvalidLinkError(Exception):
    pass


def _invalid(request: HttpRequest) -> HttpResponse:
    return render(request, "subscribers/link_invalid.html", _base_context(request), status=404)


@never_cache
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subscriber = _person(token, links.PREFERENCES)
    except _InvalidLinkError:
        return _invalid(request)
    offered = selectors.preference_channels(subscriber)
    districts = selectors.district_list()
    channels = [p.channel for p in offered]
    initial = {
        "channels": [str(p.channel.pk) for p in offered if p.subscribed],
        "district": str(subscriber.district_id or ""),
        "language": subscriber.language,
    }
    if request.method == "POST" and "unsubscribe_all" in request.POST:
        services.subscriber_unsubscribe_all(
            subscriber=subscriber, source=Source.WEB_FORM, source_detail="preference page"
        )
        return render(request, "subscribers/unsubscribed.html", {**_base_context(request), "subscriber": subscriber})
    form = PreferencesForm(
        request.POST if request.method == "POST" else None, initial=initial, channels=channels, districts=districts
    )
    if request.method == "POST" and form.is_valid():
        chosen = {int(pk) for pk in form.cleaned_data["channels"]}
        district_pk = form.cleaned_data.get("district") or ""
        services.subscriber_preferences_update(
            subscriber=subscriber, channels=[c for c in channels if c.pk in chosen], offered=channels,
            district=next((d for d in districts if str(d.pk) == district_pk), None),
            language=form.cleaned_data["language"],
        )  # fmt: skip
        messages.success(request, _("Your settings have been saved."))
        return HttpResponseRedirect(request.path)
    contacts = [
        {"messenger": selectors.PROVIDER_LABELS.get(c.connection.provider, c.connection.provider),  # type: ignore[call-overload]
         "address": selectors.mask_address(c.address), "status": c.get_status_display()}
        for c in selectors.subscriber_contacts(subscriber)
    ]  # fmt: skip
    context = {**_base_context(request), "form": form, "contacts": contacts, "subscriber": subscriber}
    return render(request, "subscribers/preferences.html", context)


@csrf_exempt  # RFC 8058: mail systems POST without cookies; the signed URL is the authorisation
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """One-click unsubscribe. POST (List-Unsubscribe=One-Click, form-encoded or multipart, or
    the button of the GET page) unsubscribes from everything and answers 200 — never a
    redirect; repeating it changes nothing. GET only asks: link scanners fetch it."""
    try:
        subscriber = _person(token, links.UNSUBSCRIBE)
    except _InvalidLinkError:
        return _invalid(request)
    if request.method == "GET":
        return render(request, "subscribers/unsubscribe.html", {**_base_context(request), "token": token})
    one_click = request.POST.get("List-Unsubscribe", "") == "One-Click"
    services.subscriber_unsubscribe_all(
        subscriber=subscriber, source=Source.WEB_FORM,
        source_detail="one-click unsubscribe (RFC 8058)" if one_click else "unsubscribe link",
    )  # fmt: skip
    context = {**_base_context(request), "subscriber": subscriber}
    return render(request, "subscribers/unsubscribed.html", context)
