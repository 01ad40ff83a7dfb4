"""The public subscribe page: branding, messenger buttons, QR codes (checked module by module
against an independently made code), posters, privacy notice, and tenant isolation."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import pytest
import segno
from django.test import Client

from accounts import roles
from channels.models import Channel
from messengers.models import Connection
from subscribers.services import poster_create
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.factories import make_user
from tests.subscribers.factories import forget_cached_tenants, sandbox


def decode_png_modules(png: bytes, *, size: int, scale: int = 10, border: int = 4) -> list[list[bool]]:
    """Read segno's 1-bit greyscale PNG and sample the centre of every module (True = dark)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", b""
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        data = png[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = data
        elif kind == b"IDAT":
            idat += data
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert (depth, colour) == (1, 0), "expected 1-bit greyscale"
    stride = (width + 7) // 8
    raw = zlib.decompress(idat)
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        filter_type, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - 1] if i else 0
            up, corner = previous[i], previous[i - 1] if i else 0
            if filter_type == 1:
                line[i] = (line[i] + left) & 0xFF
            elif filter_type == 2:
                line[i] = (line[i] + up) & 0xFF
            elif filter_type == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif filter_type == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + predictor) & 0xFF
        rows.append(bytes(line))
        previous = bytes(line)

    def dark(x: int, y: int) -> bool:
        return not (rows[y][x // 8] >> (7 - x % 8)) & 1

    centre = scale // 2
    return [
        [dark((border + c) * scale + centre, (border + r) * scale + centre) for c in range(size)] for r in range(size)
    ]


def modules(payload: str) -> list[list[bool]]:
    code = segno.make(payload, error="m", micro=False)
    return [[bool(v) for v in row] for row in code.matrix]


@pytest.fixture
def messengers(tenant: Tenant) -> dict[str, Any]:
    whatsapp = Connection.objects.create(
        provider="whatsapp", name="WA", public_address="+49 711 216-0", external_id="wa1"
    )
    telegram = Connection.objects.create(
        provider="telegram", name="Bot", public_address="@stadt_a_bot", external_id="1"
    )
    sms = Connection.objects.create(provider="sms", name="SMS", public_address="+49 170 9999999", external_id="+4917")
    dust = make_channel(
        "Feinstaubalarm", ["FEINSTAUB"], connections=[whatsapp, telegram, sms, sandbox()], icon="🌫️",
        description="Wann Feinstaubalarm gilt.", is_alarm=True,
    )  # fmt: skip
    internal = make_channel("Krisenstab", ["KRISENSTAB"], is_public=False, connections=[whatsapp])
    return {"dust": dust, "internal": internal, "whatsapp": whatsapp}


def test_the_page_offers_every_way_to_subscribe(messengers: dict[str, Any], tenant: Tenant, client_a: Client) -> None:
    tenant.primary_color = "#c8102e"
    tenant.save(update_fields=["primary_color"])
    forget_cached_tenants()
    html = client_a.get("/subscribe/").content.decode()
    assert "Stadt A" in html and "--brand: #c8102e" in html
    assert "Feinstaubalarm" in html and "Wann Feinstaubalarm gilt." in html and "Krisenstab" not in html
    assert 'href="https://wa.me/497112160?text=START%20FEINSTAUB"' in html
    assert 'href="https://t.me/stadt_a_bot?start=feinstaubalarm"' in html
    assert 'href="sms:+491709999999?body=START%20FEINSTAUB"' in html
    assert "SMS: send <kbd>START FEINSTAUB</kbd> to +491709999999" in html
    assert "Sandbox: send <kbd>START FEINSTAUB</kbd>" in html  # no public address: the keyword instructions
    assert "phone simulator" not in html  # citizens never see the simulator
    assert "/status/feinstaubalarm/widget/" in html


def test_staff_see_the_phone_simulator_link(messengers: dict[str, Any], client_a: Client) -> None:
    client_a.force_login(make_user(roles.EDITOR))
    html = client_a.get("/subscribe/").content.decode()
    assert f"/admin/messengers/connection/{sandbox().pk}/phones/" in html


def test_privacy_notice_link_or_a_clear_hint(messengers: dict[str, Any], tenant: Tenant, client_a: Client) -> None:
    assert "has not published a privacy notice" in client_a.get("/subscribe/").content.decode()
    tenant.privacy_notice_url = "https://www.stadt-a.example/datenschutz"
    tenant.save(update_fields=["privacy_notice_url"])
    forget_cached_tenants()
    html = client_a.get("/subscribe/").content.decode()
    assert 'href="https://www.stadt-a.example/datenschutz"' in html and "has not published" not in html


@pytest.mark.parametrize(
    ("provider", "payload"),
    [
        ("whatsapp", "https://wa.me/497112160?text=START%20FEINSTAUB"),
        ("telegram", "https://t.me/stadt_a_bot?start=feinstaubalarm"),
        ("sms", "SMSTO:+491709999999:START FEINSTAUB"),
        ("web", "http://tenant-a.localhost:8000/subscribe/?channel=feinstaubalarm"),
    ],
)
def test_qr_codes_encode_exactly_the_subscribe_link(
    messengers: dict[str, Any], client_a: Client, provider: str, payload: str
) -> None:
    png = client_a.get(f"/subscribe/qr/feinstaubalarm/{provider}.png")
    assert (png.status_code, png["Content-Type"]) == (200, "image/png") and len(png.content) > 300
    expected = modules(payload)
    assert decode_png_modules(png.content, size=len(expected)) == expected
    svg = client_a.get(f"/subscribe/qr/feinstaubalarm/{provider}.svg")
    assert svg["Content-Type"] == "image/svg+xml"
    assert svg.content.startswith(b"<svg") and len(svg.content) > 1000
    reference = segno.make(payload, error="m", micro=False).svg_inline(scale=8, border=4)
    path = reference.split(' d="', 1)[1].split('"', 1)[0]
    assert path in svg.content.decode()


def test_qr_downloads_are_attachments(messengers: dict[str, Any], client_a: Client) -> None:
    response = client_a.get("/subscribe/qr/feinstaubalarm/whatsapp.svg?download=1")
    assert response["Content-Disposition"] == 'attachment; filename="feinstaubalarm-whatsapp.svg"'


def test_no_qr_code_where_the_channel_cannot_be_joined(messengers: dict[str, Any], client_a: Client) -> None:
    make_channel("Verkehr", ["VERKEHR"])  # sandbox only
    for url in ("/subscribe/qr/verkehr/whatsapp.svg", "/subscribe/qr/krisenstab/whatsapp.png",
                "/subscribe/qr/feinstaubalarm/email.png", "/subscribe/qr/nothing/web.svg"):  # fmt: skip
        assert client_a.get(url).status_code == 404, url


def test_posters_carry_their_code(messengers: dict[str, Any], client_a: Client) -> None:
    poster = poster_create(channel=messengers["dust"], provider="whatsapp", label="Hbf Gleis 1")
    png = client_a.get(f"/subscribe/qr/feinstaubalarm/whatsapp.png?poster={poster.code}").content
    expected = modules(f"https://wa.me/497112160?text=START%20FEINSTAUB%20{poster.code}")
    assert decode_png_modules(png, size=len(expected)) == expected
    page = client_a.get(f"/subscribe/poster/{poster.code}/")
    html = page.content.decode()
    assert page.status_code == 200 and poster.code in html and "@page" not in html  # the CSS is a static file
    assert f"START FEINSTAUB {poster.code}" in html and "+497112160" in html
    assert f"/subscribe/qr/feinstaubalarm/whatsapp.svg?poster={poster.code}" in html
    traffic = make_channel("Verkehr", ["VERKEHR"], connections=[messengers["whatsapp"]])
    other = poster_create(channel=traffic, provider="web")
    assert client_a.get(f"/subscribe/qr/feinstaubalarm/telegram.png?poster={other.code}").status_code == 404
    # a visitor from a poster sees codes and links that carry it, for that poster's channel only
    html = client_a.get(f"/subscribe/?poster={poster.code}").content.decode()
    assert f"/subscribe/qr/feinstaubalarm/telegram.svg?poster={poster.code}" in html
    assert f"https://t.me/stadt_a_bot?start=qr_{poster.code}" in html
    assert '/subscribe/qr/verkehr/whatsapp.svg"' in html and "START%20VERKEHR%20" not in html
    web = poster_create(channel=messengers["dust"], provider="web")
    expected = modules(f"http://tenant-a.localhost:8000/subscribe/?channel=feinstaubalarm&poster={web.code}")
    png = client_a.get(f"/subscribe/qr/feinstaubalarm/web.png?poster={web.code}").content
    assert decode_png_modules(png, size=len(expected)) == expected
    assert client_a.get("/subscribe/poster/NOPE42/").status_code == 404


def test_a_poster_whose_messenger_is_gone_says_so(messengers: dict[str, Any], client_a: Client) -> None:
    poster = poster_create(channel=messengers["dust"], provider="whatsapp")
    Connection.objects.filter(pk=messengers["whatsapp"].pk).update(status="disabled")
    response = client_a.get(f"/subscribe/poster/{poster.code}/")
    assert response.status_code == 410 and "not available any more" in response.content.decode()


def test_one_tenants_page_codes_and_posters_never_appear_on_another(
    messengers: dict[str, Any], tenant: Tenant, tenant_b: Tenant, client_b: Client
) -> None:
    poster = poster_create(channel=messengers["dust"], provider="web")
    with in_tenant(tenant_b):
        make_channel("Radwege", ["RADWEGE"])
    html = client_b.get("/subscribe/").content.decode()
    assert "Stadt B" in html and "Radwege" in html
    assert "Feinstaubalarm" not in html and "Stadt A" not in html and "wa.me" not in html
    assert client_b.get("/subscribe/qr/feinstaubalarm/whatsapp.svg").status_code == 404
    assert client_b.get(f"/subscribe/poster/{poster.code}/").status_code == 404
    assert "You came here from poster" not in client_b.get(f"/subscribe/?poster={poster.code}").content.decode()
    with in_tenant(tenant):
        assert Channel.objects.filter(slug="feinstaubalarm").exists()


def test_the_bare_domain_is_each_tenants_subscribe_page_and_the_admin_stays_at_admin(
    messengers: dict[str, Any], tenant: Tenant, tenant_b: Tenant, client_a: Client, client_b: Client
) -> None:
    with in_tenant(tenant_b):
        make_channel("Radwege", ["RADWEGE"])
    home_a = client_a.get("/")
    assert home_a.status_code == 200
    html_a = home_a.content.decode()
    assert "Feinstaubalarm" in html_a and "wa.me" in html_a and "Radwege" not in html_a
    assert 'name="password"' not in html_a  # not the staff login
    html_b = client_b.get("/").content.decode()
    assert "Radwege" in html_b and "Feinstaubalarm" not in html_b and "Stadt A" not in html_b
    admin = client_a.get("/admin/")
    assert admin.status_code == 302 and "/login/" in admin["Location"]
    assert client_a.get("/subscribe/").status_code == 200
