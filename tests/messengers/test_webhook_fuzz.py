"""Hypothesis against the three webhook endpoints through the Django test client: arbitrary bytes,
arbitrary and provider-shaped JSON (NUL characters, lone surrogates, non-finite numbers, huge
values), signed correctly or not. Never a 500; what is stored can always be applied."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messengers.models import Connection, InboundMessage, WebhookEvent
from tests.fakes.fixtures import TG_SECRET, TW_TOKEN, WA_APP_SECRET, WA_PHONE_NUMBER_ID
from tests.fakes.strategies import tg_updates, tw_forms, wa_envelopes
from tests.messengers.support import (
    KeepTenant,
    apply_all,
    meta_signature,
    route_path,
    telegram_connection,
    twilio_connection,
    twilio_signature,
    whatsapp_connection,
)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)

# Strings PostgreSQL or UTF-8 cannot take as they are, and other awkward ones.
NASTY = ["\x00", "a\x00b", "\ud800", "x\udfffy", "\ud83d\ude2e", "\u2028", "\\u0000", "\ufeff", "é" * 300]
nasty_text = st.one_of(
    st.text(max_size=12), st.sampled_from(NASTY), st.tuples(st.text(max_size=4), st.sampled_from(NASTY)).map("".join)
)
wild_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.inf, -math.inf, math.nan, 10**40, -(10**30)]),
    nasty_text,
)
wild_json = st.recursive(
    wild_leaves,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(nasty_text, children, max_size=3),
    max_leaves=12,
)


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


def wa_message(draw_text: Any, mtype: Any, extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"from": draw_text, "id": f"wamid.{draw_text!r}", "timestamp": "1749416383"}
    message["type"] = mtype
    message[mtype] = extra
    return message


wa_messages = st.builds(
    wa_message,
    nasty_text,
    st.sampled_from(["text", "image", "location", "reaction", "button", "interactive", "order", "unsupported", ""]),
    wild_json,
)
wa_statuses = st.fixed_dictionaries(
    {
        "id": nasty_text,
        "status": st.sampled_from(["sent", "delivered", "read", "failed", "played"]),
        "timestamp": st.one_of(st.just("1749416383"), st.integers().map(str), wild_leaves),
    },
    optional={"errors": st.lists(st.fixed_dictionaries({"code": wild_leaves, "title": nasty_text}), max_size=2)},
)


def wa_body_for(pnid: str) -> st.SearchStrategy[bytes]:
    value = st.fixed_dictionaries(
        {"metadata": st.just({"phone_number_id": pnid})},
        optional={
            "messages": st.lists(wa_messages, max_size=3),
            "statuses": st.lists(wa_statuses, max_size=3),
            "contacts": st.lists(st.fixed_dictionaries({"wa_id": nasty_text, "profile": wild_json}), max_size=2),
        },
    )
    envelope = st.builds(
        lambda values: {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": v} for v in values]}],
        },
        st.lists(value, min_size=1, max_size=2),
    )
    return st.one_of(envelope.map(dumps), wa_envelopes.map(dumps), wild_json.map(dumps), st.binary(max_size=200))


tg_messages = st.fixed_dictionaries(
    {
        "update_id": st.integers(0, 10**12),
        "message": st.fixed_dictionaries(
            {
                "message_id": st.integers(0, 10**9),
                "chat": st.fixed_dictionaries({"id": st.integers(-(10**13), 10**13), "type": st.just("private")}),
                "date": st.integers(0, 4_000_000_000),
            },
            optional={"text": nasty_text, "from": wild_json, "caption": nasty_text, "sticker": wild_json},
        ),
    }
)
tg_bodies = st.one_of(
    tg_messages.map(dumps),
    tg_updates.map(dumps),
    st.fixed_dictionaries({"update_id": st.integers(0, 10**12), "poll": wild_json}).map(dumps),
    wild_json.map(dumps),
    st.binary(max_size=200),
)
tw_nasty_forms = st.lists(
    st.tuples(
        st.sampled_from(["MessageSid", "SmsStatus", "MessageStatus", "From", "Body", "ErrorCode", "NumMedia"]),
        nasty_text,
    ),
    max_size=8,
).map(lambda pairs: urlencode(pairs, errors="surrogatepass").encode())
tw_bodies = st.one_of(tw_forms, tw_nasty_forms, st.binary(max_size=200))


@pytest.fixture
def conns(tenant: Any) -> Iterator[dict[str, Connection]]:
    yield {
        "whatsapp": whatsapp_connection(),
        "telegram": telegram_connection(secret=TG_SECRET),
        "sms": twilio_connection(),
    }


def exercise(post: Any, allowed: set[int]) -> None:
    """Post in a savepoint that is rolled back, so every example starts from the same state."""
    with transaction.atomic():
        response = post()
        assert response.status_code in allowed, (response.status_code, response.content[:300])
        if response.status_code == 200:
            apply_all()
            left = WebhookEvent.objects.exclude(state__in=["applied", "deferred"]).values_list("state", "error")
            assert not list(left)
            # every inbound event became exactly one InboundMessage
            ids = WebhookEvent.objects.filter(kind="inbound").values_list("payload__provider_message_id", flat=True)
            assert InboundMessage.objects.count() == len({str(i)[:200] for i in ids})
        else:
            assert not WebhookEvent.objects.exists()
        transaction.set_rollback(True)


@FUZZ
@given(body=wa_body_for(WA_PHONE_NUMBER_ID))
def test_whatsapp_shared_url_signed(client_public: Client, conns: dict[str, Connection], body: bytes) -> None:
    signature = meta_signature(WA_APP_SECRET, body)

    def post() -> Any:
        with KeepTenant():
            return client_public.post(
                "/webhooks/whatsapp/", data=body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=signature
            )

    exercise(post, {200, 400, 404})


@FUZZ
@given(body=wa_body_for("555"))
def test_whatsapp_route_url_signed(client_public: Client, conns: dict[str, Connection], body: bytes) -> None:
    signature = meta_signature(WA_APP_SECRET, body)
    path = route_path(conns["whatsapp"])

    def post() -> Any:
        with KeepTenant():
            return client_public.post(
                path, data=body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=signature
            )

    exercise(post, {200, 400})


@FUZZ
@given(body=st.binary(max_size=200) | wild_json.map(dumps), signature=st.text(max_size=80))
def test_whatsapp_unsigned_garbage(
    client_public: Client, conns: dict[str, Connection], body: bytes, signature: str
) -> None:
    path = route_path(conns["whatsapp"])
    header = signature.encode("latin-1", "replace").decode("latin-1")

    def post() -> Any:
        with KeepTenant():
            return client_public.post(path, data=body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=header)

    exercise(post, {403})


@FUZZ
@given(body=tg_bodies, good=st.booleans())
def test_telegram(client_public: Client, conns: dict[str, Connection], body: bytes, good: bool) -> None:
    path = route_path(conns["telegram"])
    secret = TG_SECRET if good else TG_SECRET[:-1]

    def post() -> Any:
        with KeepTenant():
            return client_public.post(
                path, data=body, content_type="application/json", HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=secret
            )

    exercise(post, {200, 400} if good else {403})


@FUZZ
@given(body=tw_bodies, good=st.booleans(), query=st.sampled_from(["", "?ref=o1", "?ref=%00", "?a=1&a=2"]))
def test_twilio(client_public: Client, conns: dict[str, Connection], body: bytes, good: bool, query: str) -> None:
    from urllib.parse import parse_qsl

    path = route_path(conns["sms"]) + query
    try:
        params = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        params = []
    signature = twilio_signature(TW_TOKEN if good else "x" * 32, f"http://localhost{path}", params)

    def post() -> Any:
        with KeepTenant():
            return client_public.post(
                path, data=body, content_type="application/x-www-form-urlencoded", HTTP_X_TWILIO_SIGNATURE=signature
            )

    exercise(post, {200, 400, 403} if good else {403})


@pytest.mark.parametrize("depth", [10, 400, 900, 2000, 100_000])
def test_deeply_nested_json_is_never_a_500(client_public: Client, conns: dict[str, Connection], depth: int) -> None:
    nested = "[" * depth + "]" * depth
    body = (
        '{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":'
        '{"metadata":{"phone_number_id":"' + WA_PHONE_NUMBER_ID + '"},"messages":[{"from":"4917","id":"wamid.D",'
        '"timestamp":"1749416383","type":"order","order":' + nested + "}]}}]}]}"
    ).encode()
    signature = meta_signature(WA_APP_SECRET, body)

    def post() -> Any:
        with KeepTenant():
            return client_public.post(
                "/webhooks/whatsapp/", data=body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=signature
            )

    exercise(post, {200, 400})


def test_an_absurdly_long_sender_is_kept_not_failed(client_public: Client, conns: dict[str, Connection]) -> None:
    body = (
        '{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":'
        '{"metadata":{"phone_number_id":"' + WA_PHONE_NUMBER_ID + '"},"messages":[{"from":"' + "9" * 400 + '",'
        '"id":"wamid.LONG","timestamp":"1749416383","type":"text","text":{"body":"hi"}}]}}]}]}'
    ).encode()
    with KeepTenant():
        response = client_public.post(
            "/webhooks/whatsapp/",
            data=body,
            content_type="application/json",
            HTTP_X_HUB_SIGNATURE_256=meta_signature(WA_APP_SECRET, body),
        )
    assert response.status_code == 200
    assert apply_all()["applied"] == 1
    assert InboundMessage.objects.get().contact.address == "9" * 254


def test_storing_cuts_off_structures_nested_too_deep() -> None:
    from messengers.events import MAX_DEPTH, NESTED_TOO_DEEP, clean

    deep: Any = "bottom"
    for _ in range(50_000):  # far beyond the interpreter's recursion limit
        deep = [deep]
    cleaned = clean({"order": deep})
    level = cleaned["order"]
    for _ in range(MAX_DEPTH - 1):
        level = level[0]
    assert level == NESTED_TOO_DEEP
    json.dumps(cleaned)  # storable


def test_a_deep_message_is_stored_with_its_depth_cut(client_public: Client, conns: dict[str, Connection]) -> None:
    nested = "[" * 200 + "]" * 200
    body = (
        '{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":'
        '{"metadata":{"phone_number_id":"' + WA_PHONE_NUMBER_ID + '"},"messages":[{"from":"4917","id":"wamid.D",'
        '"timestamp":"1749416383","type":"order","order":' + nested + "}]}}]}]}"
    ).encode()
    with KeepTenant():
        response = client_public.post(
            "/webhooks/whatsapp/",
            data=body,
            content_type="application/json",
            HTTP_X_HUB_SIGNATURE_256=meta_signature(WA_APP_SECRET, body),
        )
    assert response.status_code == 200
    apply_all()
    assert "[nested too deep]" in json.dumps(InboundMessage.objects.get(kind="unknown").payload)
