"""POST /webhooks/email/<route>/ and `manage.py email_inbound`: the signature over the raw body
(403 and nothing stored when it is missing, wrong or over other bytes), malformed mail (400),
size (413), content type (415), routing (404), replays (one event per Message-ID), two tenants,
and a fuzz run that never sees a 500. The stored event is applied like any other inbound one."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings
from django_tenants.utils import schema_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messengers import services
from messengers.adapters.email_inbound import mail_signature
from messengers.models import Connection, Contact, InboundMessage, WebhookEvent, new_route_key
from tenants.models import Tenant, WebhookRoute
from tests.fakes.strategies import mail_messages
from tests.messengers.support import KeepTenant, apply_all, events_per_tenant, route_path

pytestmark = pytest.mark.usefixtures("tenant")

SECRET = "inbound-secret-a"


def email_connection(*, secret: str = SECRET, address: str = "news@stadt-a.example", name: str = "Mail") -> Connection:
    credentials = {"host": "127.0.0.1", "port": "9", "use_tls": "false"}
    if secret:
        credentials["inbound_secret"] = secret
    return services.connection_create(
        provider="email", name=name, credentials=credentials, external_id=address, by_operator=True
    )


def raw_mail(
    text: str = "Wann endet der Alarm?", *, message_id: str = "<q1@mail.example.org>", **headers: str
) -> bytes:
    fields = {
        "From": "Erika <erika@example.org>",
        "To": "news@stadt-a.example",
        "Subject": "Frage",
        "Message-ID": message_id,
        "Content-Type": "text/plain; charset=utf-8",
        **headers,
    }
    return "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode() + b"\r\n" + text.encode()


def post_mail(
    client: Client,
    path: str,
    body: bytes,
    *,
    secret: str | None = SECRET,
    signature: str | None = None,
    content_type: str = "message/rfc822",
) -> Any:
    headers: dict[str, str] = {}
    if signature is None and secret is not None:
        signature = mail_signature(secret, body)
    if signature is not None:
        headers["HTTP_X_MAIL_SIGNATURE"] = signature
    with KeepTenant():
        return client.post(path, data=body, content_type=content_type, **headers)  # type: ignore[arg-type]


def nothing_stored(*tenants: Tenant) -> bool:
    return set(events_per_tenant(tenants).values()) == {0}


def test_a_signed_mail_is_stored_once_however_often_it_arrives_and_applied(client_public: Client) -> None:
    conn = email_connection()
    body = raw_mail()
    for _ in range(3):
        response = post_mail(client_public, route_path(conn), body)
        assert response.status_code == 200, response.content
    event = WebhookEvent.objects.get(connection=conn)
    assert event.dedupe_key == "msg:<q1@mail.example.org>"
    assert event.payload["sender"] == "erika@example.org" and event.payload["text"] == "Wann endet der Alarm?"
    apply_all()
    message = InboundMessage.objects.get()
    assert (message.connection_id, message.contact.address, message.text) == (
        conn.pk,
        "erika@example.org",
        "Wann endet der Alarm?",
    )
    assert message.handled_by == "inbox"


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=",
        "sha1=" + "0" * 64,
        mail_signature("another-secret", raw_mail()),
        mail_signature(SECRET, raw_mail() + b"\r\nX"),  # over other bytes: the body was tampered with
        mail_signature(SECRET, raw_mail())[:-2] + "00",
    ],
    ids=["missing", "empty", "no-digest", "sha1", "other-secret", "tampered-body", "garbled"],
)
def test_a_bad_signature_is_refused_and_nothing_is_stored(
    client_public: Client, tenant: Tenant, tenant_b: Tenant, signature: str | None
) -> None:
    conn = email_connection()
    if signature is None:
        response = post_mail(client_public, route_path(conn), raw_mail(), secret=None)
    else:
        response = post_mail(client_public, route_path(conn), raw_mail(), signature=signature)
    assert response.status_code == 403
    assert nothing_stored(tenant, tenant_b)


def test_a_connection_without_inbound_secret_takes_no_mail(client_public: Client, tenant: Tenant) -> None:
    conn = email_connection(secret="")
    assert post_mail(client_public, route_path(conn), raw_mail(), secret="").status_code == 403
    assert nothing_stored(tenant)


@pytest.mark.parametrize(
    "body",
    [b"", b"\r\n\r\n", b"not a mail at all", b"\xff\xfe\x00\x01", raw_mail().replace(b"erika@example.org", b"erika")],
    ids=["empty", "blank", "text", "binary", "no-sender"],
)
def test_malformed_but_signed_mail_is_400(client_public: Client, tenant: Tenant, body: bytes) -> None:
    conn = email_connection()
    response = post_mail(client_public, route_path(conn), body)
    assert response.status_code == 400, response.content
    assert nothing_stored(tenant)


def test_routing_size_and_content_type(client_public: Client, tenant: Tenant) -> None:
    conn = email_connection()
    assert post_mail(client_public, "/webhooks/email/nobody/", raw_mail()).status_code == 404
    assert post_mail(client_public, "/webhooks/email/a%00b/", raw_mail()).status_code in (400, 404)
    assert post_mail(client_public, route_path(conn), raw_mail(), content_type="application/json").status_code == 415
    with override_settings(EMAIL_INBOUND_MAX_BYTES=100):
        assert post_mail(client_public, route_path(conn), raw_mail("x" * 200)).status_code == 413
    with KeepTenant():
        assert client_public.get(route_path(conn)).status_code == 405
    assert nothing_stored(tenant)


def test_a_big_message_beyond_djangos_upload_limit_is_taken(client_public: Client) -> None:
    conn = email_connection()
    body = raw_mail("Anbei das Foto.\r\n" + "A" * 3_000_000)  # > DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)
    assert post_mail(client_public, route_path(conn), body).status_code == 200
    assert WebhookEvent.objects.get().payload["payload"]["truncated"] is True


def test_automatic_mail_is_taken_but_dropped(client_public: Client) -> None:
    conn = email_connection()
    body = raw_mail("Ich bin nicht im Büro.", **{"Auto-Submitted": "auto-replied"})
    assert post_mail(client_public, route_path(conn), body).status_code == 200  # the MTA must not retry
    assert not WebhookEvent.objects.exists()


def test_a_mail_for_tenant_a_posted_to_tenant_b_is_refused(
    client_public: Client, tenant: Tenant, tenant_b: Tenant
) -> None:
    email_connection()
    with schema_context(tenant_b.schema_name):
        conn_b = email_connection(secret="inbound-secret-b", address="news@stadt-b.example")
    path_b = route_path(conn_b)
    assert post_mail(client_public, path_b, raw_mail()).status_code == 403  # A's secret on B's route
    assert nothing_stored(tenant, tenant_b)
    assert post_mail(client_public, path_b, raw_mail(), secret="inbound-secret-b").status_code == 200
    assert events_per_tenant([tenant, tenant_b]) == {tenant.schema_name: 0, tenant_b.schema_name: 1}


# --------------------------------------------------------------------------------------------
# manage.py email_inbound (the MTA's pipe on the platform's host)
# --------------------------------------------------------------------------------------------
def run(route_key: str, body: bytes) -> str:
    out = io.StringIO()
    with KeepTenant():
        call_command("email_inbound", route_key, stdin=io.BytesIO(body), stdout=out)
    return out.getvalue()


def test_a_route_key_that_begins_with_a_dash_reaches_the_command() -> None:
    """Keys made before 2026-12 may begin with "-" (1 in 64): the documented pipe passes `--`,
    so argparse does not read the key as an option. New keys never begin with one."""
    conn = email_connection()
    old_key = "-" + conn.route_key[1:]
    Connection.objects.filter(pk=conn.pk).update(route_key=old_key)
    with schema_context("public"):
        WebhookRoute.objects.filter(route_key=conn.route_key).update(route_key=old_key)
    out = io.StringIO()
    with KeepTenant():
        call_command("email_inbound", "--", old_key, stdin=io.BytesIO(raw_mail()), stdout=out)
    assert "stored" in out.getvalue()
    assert not any(new_route_key().startswith("-") for _ in range(2000))


def test_the_command_hands_a_message_to_the_same_path() -> None:
    conn = email_connection()
    assert "stored" in run(conn.route_key, raw_mail())
    assert "nothing new" in run(conn.route_key, raw_mail())  # a replay
    assert WebhookEvent.objects.get().payload["sender"] == "erika@example.org"
    apply_all()
    assert Contact.objects.filter(connection=conn, address="erika@example.org").exists()


@pytest.mark.parametrize(
    ("route", "body", "secret", "code"),
    [
        ("nobody", raw_mail(), SECRET, 67),
        (None, b"garbage", SECRET, 65),
        (None, raw_mail(), "", 78),
    ],
    ids=["unknown-route", "malformed", "inbound-off"],
)
def test_the_command_exits_with_sysexits_codes(route: str | None, body: bytes, secret: str, code: int) -> None:
    conn = email_connection(secret=secret)
    with pytest.raises(CommandError) as failed:
        run(route or conn.route_key, body)
    assert failed.value.returncode == code
    assert not WebhookEvent.objects.exists()


def test_the_command_refuses_oversized_mail() -> None:
    conn = email_connection()
    with override_settings(EMAIL_INBOUND_MAX_BYTES=50), pytest.raises(CommandError) as failed:
        run(conn.route_key, raw_mail())
    assert failed.value.returncode == 65


# --------------------------------------------------------------------------------------------
# Fuzz: never a 500, and whatever is stored can be applied
# --------------------------------------------------------------------------------------------
FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


@FUZZ
@given(body=mail_messages, signed=st.booleans())
def test_fuzz_the_email_webhook(client_public: Client, body: bytes, signed: bool) -> None:
    from django.db import transaction

    with transaction.atomic():
        conn = email_connection()
        response = post_mail(client_public, route_path(conn), body, secret=SECRET if signed else "wrong")
        assert response.status_code in ({200, 400} if signed else {403}), (response.status_code, response.content)
        if response.status_code == 200:
            apply_all()
            left = WebhookEvent.objects.exclude(state="applied").values_list("state", "error")
            assert not list(left)
        else:
            assert not WebhookEvent.objects.exists()
        transaction.set_rollback(True)
