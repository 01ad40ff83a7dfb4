"""Inbound media through the adapters against the fake providers over loopback HTTP: where each
webhook's file is (media_ref), the download (fetch_media) with its size cap, its host rules and
the providers' own error answers for expired or unknown files."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings

from messengers.adapters.base import (
    MEDIA_HOST_REFUSED,
    MEDIA_TOO_LARGE,
    ErrorKind,
    MediaRef,
    Provider,
    ProviderError,
    WebhookRequest,
)
from messengers.adapters.sandbox import SandboxAdapter
from messengers.adapters.telegram import TelegramAdapter
from messengers.adapters.twilio import TwilioAdapter
from messengers.adapters.whatsapp import WhatsAppAdapter
from messengers.endpoints import media_url_allowed
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio
from tests.fakes.whatsapp import FakeWhatsApp
from tests.messengers.test_adapter_telegram import adapter_for as telegram_adapter
from tests.messengers.test_adapter_twilio import adapter_for as twilio_adapter
from tests.messengers.whatsapp_helpers import adapter_for as whatsapp_adapter

JPEG = b"\xff\xd8\xff\xe0" + b"\x10JFIF" + bytes(range(256)) * 8
OGG = b"OggS" + bytes(2000)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(3000)
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
MB = 1024 * 1024


def refused(exc: pytest.ExceptionInfo[ProviderError]) -> tuple[ErrorKind, str]:
    return exc.value.kind, exc.value.code


# ------------------------------------------------------------------ which hosts files may come from
@override_settings(MESSENGER_MEDIA_HOST_ALLOWLIST=["https://lookaside.fbsbx.com", "https://cdn.example.org/media"])
def test_media_hosts_are_the_api_origin_and_the_operators_list() -> None:
    api = "http://127.0.0.1:8081"
    assert media_url_allowed("http://127.0.0.1:8081/whatsapp_business/attachments/?mid=1&hash=x", api)
    assert media_url_allowed("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1", api)
    assert media_url_allowed("https://cdn.example.org/media/AC1/ME2?Expires=1", api)
    for url in (
        "http://127.0.0.1:8082/file",  # another port
        "https://127.0.0.1:8081/file",  # another scheme
        "https://cdn.example.org/other/ME2",  # outside the entry's path
        "https://lookaside.fbsbx.com.evil.example/x",
        "https://lookaside.fbsbx.com@evil.example/x",
        "https://evil.example/x#https://lookaside.fbsbx.com",
        "http://2130706433/x",
        "http://[::1]/x",
        "file:///etc/passwd",
        "",
    ):
        assert not media_url_allowed(url, api), url
    assert media_url_allowed("https://graph.facebook.com/x", "") is False  # "" is no origin of its own


# ------------------------------------------------------------------ WhatsApp
def test_whatsapp_media_ref_reads_the_webhook_media_object() -> None:
    ref = WhatsAppAdapter.media_ref(
        "document", {"id": "1013859600285441", "mime_type": "application/pdf", "filename": "Antrag.pdf"}
    )
    assert ref == MediaRef(ref="1013859600285441", mime_type="application/pdf", filename="Antrag.pdf")
    voice = WhatsAppAdapter.media_ref("audio", {"id": "77", "mime_type": "audio/ogg; codecs=opus", "voice": True})
    assert voice is not None and voice.voice
    for kind, payload in (
        ("image", {}),
        ("image", {"id": ""}),
        ("image", {"id": "../../v23.0/me"}),
        ("image", {"id": ["1"]}),
        ("image", {"id": None}),
        ("text", {"id": "1"}),
        ("location", {"latitude": 1}),
    ):
        assert WhatsAppAdapter.media_ref(kind, payload) is None, payload


def test_whatsapp_fetches_the_url_graph_names_with_the_token(wa_fake: FakeWhatsApp) -> None:
    media_id = wa_fake.add_media(JPEG, "image/jpeg")
    media = whatsapp_adapter(wa_fake).fetch_media(MediaRef(ref=media_id), max_bytes=MB)
    assert (media.content, media.mime_type) == (JPEG, "image/jpeg")
    lookup, download = wa_fake.requests(kind="lookup")[-1], wa_fake.requests(kind="media_download")[-1]
    assert lookup["path"].endswith(f"/{media_id}")
    assert download["query"]["mid"] == media_id and download["headers"]["Authorization"].startswith("Bearer ")


def test_whatsapp_expired_and_unknown_media_are_graph_error_100(wa_fake: FakeWhatsApp) -> None:
    adapter = whatsapp_adapter(wa_fake)
    media_id = wa_fake.add_media(JPEG, "image/jpeg")
    wa_fake.expire_media(media_id)
    with pytest.raises(ProviderError) as expired:
        adapter.fetch_media(MediaRef(ref=media_id), max_bytes=MB)
    assert refused(expired) == (ErrorKind.BAD_REQUEST, "100") and "does not exist" in expired.value.message
    wa_fake.configure(strict_numbers=True)  # an id Meta never issued (the fake auto-registers numbers otherwise)
    with pytest.raises(ProviderError) as unknown:
        adapter.fetch_media(MediaRef(ref="1234567890123456"), max_bytes=MB)
    assert refused(unknown) == (ErrorKind.BAD_REQUEST, "100")
    assert not wa_fake.requests(kind="media_download")


def test_whatsapp_refuses_too_large_files_before_downloading(wa_fake: FakeWhatsApp) -> None:
    media_id = wa_fake.add_media(JPEG, "image/jpeg")
    with pytest.raises(ProviderError) as exc:
        whatsapp_adapter(wa_fake).fetch_media(MediaRef(ref=media_id), max_bytes=len(JPEG) - 1)
    assert refused(exc) == (ErrorKind.BAD_REQUEST, MEDIA_TOO_LARGE)
    assert not wa_fake.requests(kind="media_download")


def test_whatsapp_bad_token_is_bad_credentials(wa_fake: FakeWhatsApp) -> None:
    media_id = wa_fake.add_media(JPEG, "image/jpeg")
    adapter = whatsapp_adapter(wa_fake, credentials={"access_token": "wrong"})
    with pytest.raises(ProviderError) as exc:
        adapter.fetch_media(MediaRef(ref=media_id), max_bytes=MB)
    assert exc.value.kind is ErrorKind.BAD_CREDENTIALS


def test_whatsapp_media_url_elsewhere_is_refused_unless_the_operator_listed_it(
    wa_fake: FakeWhatsApp, settings: Any
) -> None:
    media_id = wa_fake.add_media(SVG, "image/svg+xml")
    adapter = whatsapp_adapter(wa_fake)
    wa_fake.configure(media_url_base="https://attacker.example")
    with pytest.raises(ProviderError) as exc:
        adapter.fetch_media(MediaRef(ref=media_id), max_bytes=MB)
    assert refused(exc) == (ErrorKind.BAD_REQUEST, MEDIA_HOST_REFUSED)
    # the fake on "localhost" plays Meta's CDN: another origin than the API base (127.0.0.1)
    cdn = f"http://localhost:{wa_fake.port}"
    wa_fake.configure(media_url_base=cdn)
    with pytest.raises(ProviderError):
        adapter.fetch_media(MediaRef(ref=media_id), max_bytes=MB)
    settings.MESSENGER_MEDIA_HOST_ALLOWLIST = [cdn]
    media = adapter.fetch_media(MediaRef(ref=media_id), max_bytes=MB)
    assert (media.content, media.mime_type) == (SVG, "image/svg+xml")  # the adapter reports; the inbox decides


# ------------------------------------------------------------------ Telegram
def test_telegram_media_ref_covers_photos_voice_stickers_and_documents() -> None:
    voice = TelegramAdapter.media_ref("audio", {"type": "voice", "file_id": "AwACAgIAAxk", "file_size": 2000})
    assert voice == MediaRef(ref="AwACAgIAAxk", mime_type="audio/ogg", size=2000, voice=True)
    photo = TelegramAdapter.media_ref("image", {"type": "photo", "file_id": "AgACAgIAAxk", "width": 800})
    assert photo is not None and photo.mime_type == "image/jpeg"
    sticker = TelegramAdapter.media_ref("sticker", {"type": "sticker", "file_id": "CAACAgIAAxk", "is_animated": True})
    assert sticker is not None and sticker.mime_type == "application/x-tgsticker"
    document = TelegramAdapter.media_ref(
        "document", {"type": "document", "file_id": "BQACAgIAAxk", "file_name": "Foto.HEIC", "mime_type": "image/heic"}
    )
    assert document is not None and (document.filename, document.mime_type) == ("Foto.HEIC", "image/heic")
    for payload in ({}, {"type": "photo"}, {"type": "photo", "file_id": "a/b"}, {"type": "text", "file_id": "x"}):
        assert TelegramAdapter.media_ref("image", payload) is None, payload


def test_telegram_sticker_keeps_its_piece_name(tg_fake: FakeTelegram) -> None:
    update = tg_fake.inbound(chat_id=77, kind="sticker", file_id="CAACAgIAAxkBst")["update"]
    assert update["message"]["sticker"]["type"] == "regular"  # Telegram's sticker type, as sent
    [event] = telegram_adapter(tg_fake).parse_webhook(
        WebhookRequest(method="POST", url="", headers={}, body=json.dumps(update).encode())
    )
    assert event.kind == "sticker"  # type: ignore[union-attr]
    payload = event.payload  # type: ignore[union-attr]
    assert (payload["type"], payload["media_type"]) == ("sticker", "regular")
    ref = TelegramAdapter.media_ref("sticker", payload)
    assert ref is not None and (ref.ref, ref.mime_type) == ("CAACAgIAAxkBst", "image/webp")
    # rows stored before the fix carry the sticker's own type: still found by the kind
    old = TelegramAdapter.media_ref("sticker", {**payload, "type": "regular"})
    assert old is not None and old.ref == "CAACAgIAAxkBst"


def test_telegram_get_file_then_download(tg_fake: FakeTelegram) -> None:
    file_id = tg_fake.add_media(OGG, "audio/ogg")
    ref = TelegramAdapter.media_ref("audio", {"type": "voice", "file_id": file_id})
    assert ref is not None
    media = telegram_adapter(tg_fake).fetch_media(ref, max_bytes=MB)
    assert (media.content, media.mime_type) == (OGG, "audio/ogg") and media.filename.endswith(".oga")
    assert tg_fake.requests(kind="getfile")[-1]["body"]["file_id"] == file_id
    assert tg_fake.requests(kind="file")[-1]["status"] == 200


def test_telegram_expired_file_is_invalid_file_id_and_too_large_is_refused(tg_fake: FakeTelegram) -> None:
    adapter = telegram_adapter(tg_fake)
    file_id = tg_fake.add_media(PNG, "image/png")
    with pytest.raises(ProviderError) as large:
        adapter.fetch_media(MediaRef(ref=file_id), max_bytes=100)
    assert refused(large) == (ErrorKind.BAD_REQUEST, MEDIA_TOO_LARGE)
    assert not tg_fake.requests(kind="file")
    tg_fake.expire_media(file_id)
    with pytest.raises(ProviderError) as expired:
        adapter.fetch_media(MediaRef(ref=file_id), max_bytes=MB)
    assert refused(expired) == (ErrorKind.BAD_REQUEST, "400") and "invalid file_id" in expired.value.message


# ------------------------------------------------------------------ Twilio
def test_twilio_media_ref_is_the_first_media_url() -> None:
    url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
    payload = {"media": [{"url": url, "content_type": "image/jpeg"}, {"url": url + "2", "content_type": "video/mp4"}]}
    assert TwilioAdapter.media_ref("image", payload) == MediaRef(ref=url, mime_type="image/jpeg")
    odd: list[dict[str, Any]] = [{}, {"media": []}, {"media": "x"}, {"media": [{"url": "javascript:alert(1)"}]}]
    for bad in [*odd, {"media": [1]}]:
        assert TwilioAdapter.media_ref("image", bad) is None, bad


def test_twilio_follows_the_redirect_to_its_cdn_without_credentials(tw_fake: FakeTwilio) -> None:
    url = tw_fake.add_media(PNG, "image/png")
    media = twilio_adapter(tw_fake).fetch_media(MediaRef(ref=url, mime_type="image/png"), max_bytes=MB)
    assert (media.content, media.mime_type) == (PNG, "image/png")
    first, cdn = tw_fake.requests(kind="media")[-1], tw_fake.requests(kind="media_cdn")[-1]
    assert first["headers"]["Authorization"].startswith("Basic ")
    assert "Authorization" not in cdn["headers"]


def test_twilio_redirect_to_an_unlisted_cdn_and_media_urls_elsewhere_are_refused(tw_fake: FakeTwilio) -> None:
    adapter = twilio_adapter(tw_fake)
    url = tw_fake.add_media(PNG, "image/png")
    tw_fake.configure(media_cdn_base="https://attacker.example")
    with pytest.raises(ProviderError) as redirected:
        adapter.fetch_media(MediaRef(ref=url), max_bytes=MB)
    assert refused(redirected) == (ErrorKind.BAD_REQUEST, MEDIA_HOST_REFUSED)
    elsewhere = url.replace("127.0.0.1", "localhost")  # a webhook naming another host: no credentials go there
    before = len(tw_fake.requests(kind="media"))
    with pytest.raises(ProviderError) as other:
        adapter.fetch_media(MediaRef(ref=elsewhere), max_bytes=MB)
    assert refused(other) == (ErrorKind.BAD_REQUEST, MEDIA_HOST_REFUSED)
    assert len(tw_fake.requests(kind="media")) == before


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_twilio_download_stops_at_the_cap(tw_fake: FakeTwilio, chunked: bool) -> None:
    url = tw_fake.add_media(bytes(300 * 1024), "video/mp4", chunked=chunked)
    with pytest.raises(ProviderError) as exc:
        twilio_adapter(tw_fake).fetch_media(MediaRef(ref=url), max_bytes=100 * 1024)
    assert refused(exc) == (ErrorKind.BAD_REQUEST, MEDIA_TOO_LARGE)


def test_twilio_deleted_media_is_not_found(tw_fake: FakeTwilio) -> None:
    url = tw_fake.add_media(PNG, "image/png")
    tw_fake.expire_media(url)
    with pytest.raises(ProviderError) as exc:
        twilio_adapter(tw_fake).fetch_media(MediaRef(ref=url), max_bytes=MB)
    assert refused(exc) == (ErrorKind.BAD_REQUEST, "20404")


# ------------------------------------------------------------------ providers without files
def test_sandbox_has_no_media() -> None:
    assert SandboxAdapter.media_ref("image", {"id": "1"}) is None
    adapter = object.__new__(SandboxAdapter)  # its __init__ wants a tenant connection; the default needs none
    with pytest.raises(ProviderError) as exc:
        adapter.fetch_media(MediaRef(ref="1"), max_bytes=MB)
    assert exc.value.kind is ErrorKind.BAD_REQUEST and adapter.provider is Provider.SANDBOX
