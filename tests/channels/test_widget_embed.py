"""The channel admin offers the status widget's embed code, on the tenant's own domain only."""

from __future__ import annotations

from html import unescape

from django.test import Client

from accounts import roles
from channels.selectors import channel_widget_embed
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.factories import make_user
from tests.helpers import enrol_totp

WIDGET_A = "http://tenant-a.localhost:8000/status/feinstaubalarm/widget/"


def _admin(client: Client) -> Client:
    user = make_user(roles.ADMIN)
    enrol_totp(user)
    client.force_login(user)
    return client


def test_the_alarm_channels_change_page_offers_the_embed_code_to_copy(tenant: Tenant, client_a: Client) -> None:
    channel = make_channel(is_alarm=True)
    html = _admin(client_a).get(f"/admin/channels/channel/{channel.pk}/change/").content.decode()
    assert "embed code for your website" in html and 'data-copy="embed-code-' in html
    assert "channels/admin_copy.js" in html
    textarea = html.split('class="vLargeTextField embed-code"', 1)[1].split("</textarea>", 1)[0]
    assert "readonly" in textarea
    snippet = unescape(textarea.split(">", 1)[1])
    assert snippet.startswith(f'<iframe src="{WIDGET_A}" title="Feinstaubalarm"') and snippet.endswith("</iframe>")
    assert "<iframe" not in html.replace(textarea, "")  # shown as text to copy, never rendered in the admin
    assert client_a.get(WIDGET_A.removeprefix("http://tenant-a.localhost:8000")).status_code == 200


def test_the_embed_code_speaks_german_and_warns_when_the_widget_would_be_empty(
    tenant: Tenant, client_a: Client
) -> None:
    channel = make_channel(is_alarm=True, is_public=False)
    assert not channel_widget_embed(channel).live
    html = _admin(client_a).get(f"/admin/channels/channel/{channel.pk}/change/", HTTP_ACCEPT_LANGUAGE="de")
    text = html.content.decode()
    assert "Einbettungscode für Ihre Website" in text and "Kopieren" in text
    assert "nur öffentliche, aktive Alarmkanäle" in text
    plain = make_channel("Verkehr", ["VERKEHR"])
    page = client_a.get(f"/admin/channels/channel/{plain.pk}/change/").content.decode()
    assert 'data-copy="embed-code-' not in page  # not an alarm channel: no widget to embed


def test_each_tenant_embeds_its_own_domain(tenant: Tenant, tenant_b: Tenant, client_b: Client) -> None:
    make_channel("Verkehr", ["VERKEHR"])  # so A's alarm channel has an id that B does not have
    channel = make_channel(is_alarm=True)
    assert channel_widget_embed(channel).url == WIDGET_A
    with in_tenant(tenant_b):
        other = make_channel(is_alarm=True)
        embed_b = channel_widget_embed(other)
    assert embed_b.url == "http://tenant-b.localhost:8000/status/feinstaubalarm/widget/" and embed_b.live
    assert "tenant-a" not in embed_b.code
    # tenant B's admins cannot open tenant A's channel, and their page shows their own domain
    admin_b = _admin_in(tenant_b, client_b)
    page = admin_b.get(f"/admin/channels/channel/{other.pk}/change/").content.decode()
    assert "tenant-b.localhost:8000/status/feinstaubalarm/widget/" in page and "tenant-a.localhost" not in page
    assert channel.pk != other.pk
    missing = admin_b.get(f"/admin/channels/channel/{channel.pk}/change/")
    assert missing.status_code in (302, 404) and WIDGET_A not in missing.content.decode()


def _admin_in(tenant: Tenant, client: Client) -> Client:
    with in_tenant(tenant):
        return _admin(client)
