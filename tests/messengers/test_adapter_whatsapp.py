"""WhatsAppAdapter against the fake Cloud API over loopback HTTP: sending, errors, account."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from messengers.adapters.base import (
    Button,
    ErrorKind,
    Media,
    OutgoingMessage,
    Provider,
    ProviderError,
    StatusEvent,
    TemplateRef,
)
from messengers.adapters.whatsapp import classify, graph_root
from tests.fakes.common import RecordingServer
from tests.fakes.fixtures import WA_APP_SECRET, WA_PHONE_NUMBER_ID, WA_TOKEN, WA_VERIFY_TOKEN
from tests.fakes.whatsapp import FakeWhatsApp
from tests.messengers.whatsapp_helpers import TO, WA_ID, adapter_for, last_body, pushed


# ------------------------------------------------------------------ registry, config
def test_registry_and_repr_hide_credentials() -> None:
    adapter = adapter_for()
    assert adapter.provider is Provider.WHATSAPP and adapter.native_async
    assert WA_TOKEN not in repr(adapter) and WA_APP_SECRET not in repr(adapter)
    assert graph_root("") == "https://graph.facebook.com/v23.0"
    assert graph_root("http://127.0.0.1:8080/") == "http://127.0.0.1:8080/v23.0"
    assert graph_root("https://graph.facebook.com/v25.0") == "https://graph.facebook.com/v25.0"


# ------------------------------------------------------------------ request bodies
@pytest.mark.parametrize(
    "message",
    [
        OutgoingMessage(to="+49 170 123-4567", text='Sperrung "Hauptstraße" \\ ab 7 Uhr\n😀', reference="d1"),
        OutgoingMessage(
            to=TO,
            template=TemplateRef(
                name="alert",
                language="de",
                body_params=('Zitat "a"', "ü"),
                header_media=Media(url="https://cdn.example.org/f.jpg"),
                button_params=((0, "x1"),),
            ),
            reference="d123456",
        ),
        OutgoingMessage(to=TO, text="Flyer", media=Media(url="https://cdn.example.org/f.jpg"), reference="d9"),
        OutgoingMessage(to=TO, text="Frage", buttons=(Button(title="Ja", payload="yes"),), reference="d7"),
        OutgoingMessage(to=TO, text="ohne Referenz"),
        OutgoingMessage(to=TO, text="Antwort", reference="o5", reply_to_provider_id="wamid.X"),
    ],
)
def test_the_bulk_body_is_the_payload_rendered_byte_for_byte(message: OutgoingMessage) -> None:
    """The body rendered once per message and spliced per recipient equals the plain rendering,
    for a second recipient too."""
    from dataclasses import replace

    from messengers.adapters._http import compact_json

    adapter = adapter_for()
    for to, reference in ((message.to, message.reference), ("+4917099", message.reference and "d2")):
        current = replace(message, to=to, reference=reference)
        assert adapter.body(current) == compact_json(adapter.build_payload(current))


# ------------------------------------------------------------------ sending
def test_send_text(wa_fake: FakeWhatsApp) -> None:
    wa_fake.open_window(WA_ID)
    result = adapter_for(wa_fake).send(OutgoingMessage(to=TO, text="Sperrung Hauptstraße", reference="d-1"))
    assert result.provider_message_id.startswith("wamid.") and result.provider_status == "accepted"
    assert last_body(wa_fake) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+491701234567",
        "type": "text",
        "text": {"preview_url": False, "body": "Sperrung Hauptstraße"},
        "biz_opaque_callback_data": "d-1",
    }
    assert wa_fake.sent_messages()[-1]["id"] == result.provider_message_id


def test_send_media_link_buttons_and_reply_context(wa_fake: FakeWhatsApp) -> None:
    adapter = adapter_for(wa_fake)
    adapter.send(
        OutgoingMessage(
            to=TO,
            text="Flyer",
            media=Media(url="https://cdn.example.org/f.jpg"),
            buttons=(Button(title="Details", url="https://example.org/r/1"),),
            reply_to_provider_id="wamid.PREV",
        )
    )
    body = last_body(wa_fake)
    assert body["type"] == "image"
    assert body["image"] == {
        "link": "https://cdn.example.org/f.jpg",
        "caption": "Flyer\n\nDetails: https://example.org/r/1",
    }
    assert body["context"] == {"message_id": "wamid.PREV"}
    adapter.send(OutgoingMessage(to=TO, text="", media=Media(url="https://cdn.example.org/v.mp4", kind="video")))
    assert last_body(wa_fake)["video"] == {"link": "https://cdn.example.org/v.mp4"}


def test_send_reply_buttons_as_interactive(wa_fake: FakeWhatsApp) -> None:
    buttons = (Button(title="Ja, ich komme gerne vorbei", payload="rsvp:yes"), Button(title="Nein", payload="rsvp:no"))
    adapter_for(wa_fake).send(
        OutgoingMessage(to=TO, text="Kommen Sie?", media=Media(url="https://cdn.example.org/h.jpg"), buttons=buttons)
    )
    body = last_body(wa_fake)
    assert body["type"] == "interactive"
    interactive = body["interactive"]
    assert interactive["type"] == "button"
    assert interactive["body"] == {"text": "Kommen Sie?"}
    assert interactive["header"] == {"type": "image", "image": {"link": "https://cdn.example.org/h.jpg"}}
    assert interactive["action"]["buttons"][0] == {
        "type": "reply",
        "reply": {"id": "rsvp:yes", "title": "Ja, ich komme gerne "},
    }
    too_many = tuple(Button(title=str(i), payload=f"p{i}") for i in range(4))
    count = len(wa_fake.requests())
    with pytest.raises(ProviderError) as error:
        adapter_for(wa_fake).send(OutgoingMessage(to=TO, text="?", buttons=too_many))
    assert error.value.kind is ErrorKind.BAD_REQUEST
    assert len(wa_fake.requests()) == count  # refused before any request


def test_send_template(wa_fake: FakeWhatsApp, sink: RecordingServer) -> None:
    template = TemplateRef(
        name="citizen_alert_v2",
        language="de",
        body_params=("Hauptstraße", "08:00"),
        header_media=Media(url="https://cdn.example.org/map.png"),
        button_params=((1, "c42?t=abc"),),
    )
    result = adapter_for(wa_fake).send(OutgoingMessage(to=TO, template=template, reference="d-9"))
    assert result.provider_status == "accepted"
    body = last_body(wa_fake)
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "citizen_alert_v2",
        "language": {"code": "de", "policy": "deterministic"},
        "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example.org/map.png"}}]},
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Hauptstraße"}, {"type": "text", "text": "08:00"}],
            },
            {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "c42?t=abc"}]},
        ],
    }
    assert wa_fake.wait_idle(10)
    events = [e for r in pushed(sink) for e in adapter_for(wa_fake).parse_webhook(r)]
    assert {e.status for e in events if isinstance(e, StatusEvent)} == {"sent", "delivered", "read"}


@pytest.mark.parametrize(
    ("template", "code"),
    [
        (TemplateRef(name="missing", language="de"), "132001"),
        (TemplateRef(name="paused_promo", language="de"), "132015"),
        (TemplateRef(name="disabled_promo", language="de"), "132016"),
        (TemplateRef(name="newsletter_update", language="de", body_params=("only one",)), "132000"),
    ],
)
def test_template_problems(wa_fake: FakeWhatsApp, template: TemplateRef, code: str) -> None:
    with pytest.raises(ProviderError) as error:
        adapter_for(wa_fake).send(OutgoingMessage(to=TO, template=template))
    assert error.value.kind is ErrorKind.TEMPLATE_PROBLEM and error.value.code == code
    assert error.value.permanent


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (131026, ErrorKind.NOT_ON_MESSENGER),
        (131047, ErrorKind.WINDOW_CLOSED),
        (131056, ErrorKind.PAIR_RATE),
        (368, ErrorKind.ACCOUNT_PROBLEM),
        (131031, ErrorKind.ACCOUNT_PROBLEM),
        (131042, ErrorKind.ACCOUNT_PROBLEM),
        (132000, ErrorKind.TEMPLATE_PROBLEM),
        (132001, ErrorKind.TEMPLATE_PROBLEM),
        (132015, ErrorKind.TEMPLATE_PROBLEM),
        (132016, ErrorKind.TEMPLATE_PROBLEM),
        (100, ErrorKind.BAD_REQUEST),
        (131008, ErrorKind.BAD_REQUEST),
        (131009, ErrorKind.BAD_REQUEST),
        (131051, ErrorKind.BAD_REQUEST),
        (1, ErrorKind.TEMPORARY),
        (2, ErrorKind.TEMPORARY),
        (131000, ErrorKind.TEMPORARY),
        (131016, ErrorKind.TEMPORARY),
        (131057, ErrorKind.TEMPORARY),
        (190, ErrorKind.BAD_CREDENTIALS),
        (130429, ErrorKind.RATE_LIMITED),
    ],
)
def test_errors_are_classified_by_code(wa_fake: FakeWhatsApp, code: int, kind: ErrorKind) -> None:
    # a misleading HTTP status on purpose: classification must follow the code in the body
    wa_fake.fail_next(1, "error", code=code, http_status=400)
    with pytest.raises(ProviderError) as error:
        adapter_for(wa_fake).send(OutgoingMessage(to=TO, text="x"))
    assert error.value.kind is kind
    assert error.value.code == str(code) and error.value.http_status == 400
    if code != 190:  # token errors use Graph's classic message instead of "(#code) title"
        assert error.value.message.startswith(f"(#{code})")


def test_bad_token_is_bad_credentials(wa_fake: FakeWhatsApp) -> None:
    adapter = adapter_for(wa_fake, credentials={"access_token": "stale", "app_secret": "x"})
    with pytest.raises(ProviderError) as error:
        adapter.send(OutgoingMessage(to=TO, text="x"))
    assert error.value.kind is ErrorKind.BAD_CREDENTIALS and error.value.affects_connection
    assert "stale" not in str(error.value)


def test_rate_limits_carry_retry_after(wa_fake: FakeWhatsApp) -> None:
    adapter = adapter_for(wa_fake)
    wa_fake.fail_next(1, "rate_limit", http_status=400)
    with pytest.raises(ProviderError) as error:
        adapter.send(OutgoingMessage(to=TO, text="x"))
    assert error.value.kind is ErrorKind.RATE_LIMITED and error.value.retry_after == 1.0
    assert error.value.retryable
    wa_fake.fail_next(1, "rate_limit", http_status=429, retry_after=3)
    with pytest.raises(ProviderError) as error:
        adapter.send(OutgoingMessage(to=TO, text="x"))
    assert error.value.retry_after == 3.0 and error.value.http_status == 429
    wa_fake.fail_next(1, "error", code=131056)
    with pytest.raises(ProviderError) as error:
        adapter.send(OutgoingMessage(to=TO, text="x"))
    assert error.value.kind is ErrorKind.PAIR_RATE and error.value.retry_after == 6.0
    wa_fake.configure(rate=1)
    kinds = set()
    for _ in range(4):
        try:
            adapter.send(OutgoingMessage(to=TO, text="x"))
        except ProviderError as exc:
            kinds.add((exc.kind, exc.code))
    assert (ErrorKind.RATE_LIMITED, "130429") in kinds


def test_server_errors_resets_and_timeouts_are_temporary(wa_fake: FakeWhatsApp) -> None:
    adapter = adapter_for(wa_fake, timeout=0.5)
    wa_fake.configure(timeout_hold=3.0)
    for kind in ("5xx", "reset", "timeout"):
        wa_fake.fail_next(1, kind)
        with pytest.raises(ProviderError) as error:
            adapter.send(OutgoingMessage(to=TO, text="x"))
        assert error.value.kind is ErrorKind.TEMPORARY, kind
        assert WA_TOKEN not in str(error.value)
    with pytest.raises(ProviderError) as error:
        adapter_for(None).send(OutgoingMessage(to=TO, text="x"))
    assert error.value.kind is ErrorKind.TEMPORARY and "network error" in error.value.message


def test_unknown_codes_fall_back_on_http_status() -> None:
    assert classify(999999, 503) is ErrorKind.TEMPORARY
    assert classify(999999, 429) is ErrorKind.RATE_LIMITED
    assert classify(999999, 400) is ErrorKind.BAD_REQUEST
    assert classify(250) is ErrorKind.ACCOUNT_PROBLEM
    assert classify(None, 401) is ErrorKind.BAD_CREDENTIALS


def test_send_async_shares_the_request_and_error_code(wa_fake: FakeWhatsApp) -> None:
    adapter = adapter_for(wa_fake)
    wa_fake.open_window(WA_ID)

    async def run() -> tuple[list[str], ProviderError, ProviderError]:
        async with aiohttp.ClientSession() as session:
            results = await asyncio.gather(
                *(
                    adapter.send_async(session, OutgoingMessage(to=TO, text=f"m{i}", reference=f"r{i}"))
                    for i in range(20)
                )
            )
            wa_fake.fail_next(1, "rate_limit", http_status=400)
            try:
                await adapter.send_async(session, OutgoingMessage(to=TO, text="x"))
            except ProviderError as exc:
                limited = exc
            try:
                await adapter_for(None).send_async(session, OutgoingMessage(to=TO, text="x"))
            except ProviderError as exc:
                offline = exc
        return [r.provider_message_id for r in results], limited, offline

    ids, limited, offline = asyncio.run(run())
    assert len(set(ids)) == 20 and all(i.startswith("wamid.") for i in ids)
    assert {m["reference"] for m in wa_fake.sent_messages()} >= {f"r{i}" for i in range(20)}
    assert limited.kind is ErrorKind.RATE_LIMITED and limited.retry_after == 1.0
    assert offline.kind is ErrorKind.TEMPORARY


# ------------------------------------------------------------------ account
def test_check_credentials(wa_fake: FakeWhatsApp) -> None:
    good = adapter_for(wa_fake).check_credentials()
    # the number, not the verified name: no free text of the remote side (messengers.endpoints)
    assert good.ok and good.detail == "Connected: WhatsApp number 15550783881"
    assert good.info["id"] == WA_PHONE_NUMBER_ID
    bad = adapter_for(wa_fake, credentials={"access_token": "nope"}).check_credentials()
    assert not bad.ok and "Access token rejected" in bad.detail and "nope" not in bad.detail
    wa_fake.configure(strict_numbers=True)
    unknown = adapter_for(wa_fake, external_id="999").check_credentials()
    assert not unknown.ok and "999" in unknown.detail and "code 100" in unknown.detail
    offline = adapter_for(None).check_credentials()
    assert not offline.ok and "not reachable" in offline.detail
    assert not adapter_for(wa_fake, external_id="").check_credentials().ok


def test_list_templates_follows_paging(wa_fake: FakeWhatsApp) -> None:
    for i in range(120):
        wa_fake.add_template(name=f"bulk_{i:03d}", language="de", body="Hallo {{1}}, {{2}}")
    templates = adapter_for(wa_fake).list_templates()
    assert len(templates) == 128
    paths = [r["query"].get("after") for r in wa_fake.requests(kind="templates")]
    assert paths[0] is None and paths[1]  # the second page used the cursor
    alert = next(t for t in templates if t.name == "citizen_alert_v2")
    assert alert.language == "de" and alert.category == "UTILITY" and alert.status == "APPROVED"
    assert alert.parameter_count == 2 and alert.body == "Achtung: {{1}} ist ab {{2}} gesperrt."
    assert {t.status for t in templates} >= {"APPROVED", "PAUSED", "DISABLED", "PENDING"}
    with pytest.raises(ProviderError) as error:
        adapter_for(wa_fake, credentials={"access_token": "nope"}).list_templates()
    assert error.value.kind is ErrorKind.BAD_CREDENTIALS


def test_handshake_and_mark_read(wa_fake: FakeWhatsApp) -> None:
    adapter = adapter_for(wa_fake)
    query = {"hub.mode": "subscribe", "hub.verify_token": WA_VERIFY_TOKEN, "hub.challenge": "1158201444"}
    assert adapter.handshake_challenge(query) == "1158201444"
    assert adapter.handshake_challenge({**query, "hub.verify_token": "wrong"}) is None
    assert adapter.handshake_challenge({**query, "hub.mode": "unsubscribe"}) is None
    inbound = wa_fake.inbound(sender=WA_ID, text="hi")
    assert adapter.mark_read(inbound["id"])
    assert not adapter.mark_read("wamid.unknown")
