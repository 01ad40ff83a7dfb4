"""Outgoing webhooks delivered over real HTTP to a receiver on loopback (tests.fakes'
RecordingServer): the signature as docs/api.md documents it (its verifier runs here), retries on
an exponential schedule with injected time, switching off after failures with mails and an audit
entry, DNS rebinding refused at delivery, and the log's short excerpt of the answer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone
from requests.structures import CaseInsensitiveDict

from accounts import roles
from accounts.models import AuditEvent, User
from core import crypto
from messengers.outgoing import services
from messengers.outgoing.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.factories import make_user
from tests.fakes.common.recording import RecordingServer
from tests.helpers import enrol_totp
from tests.messengers import outgoing_support

pytestmark = pytest.mark.usefixtures("tenant")

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
EVENT = "alarm.state_changed"
DATA = {"channel": {"id": 1, "slug": "feinstaubalarm"}, "from": "inactive", "to": "active"}


@pytest.fixture
def names(settings: Any) -> Iterator[dict[str, list[str]]]:
    settings.NETGUARD_RESOLVER = "tests.messengers.outgoing_support.table_resolve"
    outgoing_support.NAMES.clear()
    yield outgoing_support.NAMES
    outgoing_support.NAMES.clear()


@pytest.fixture
def receiver(sink: RecordingServer, names: dict[str, list[str]], settings: Any) -> Iterator[RecordingServer]:
    """The loopback receiver under the name receiver.test (the test-only exemption names its port)."""
    settings.OUTGOING_WEBHOOK_TEST_RECEIVER = f"127.0.0.1:{sink.port}"
    names["receiver.test"] = ["127.0.0.1"]
    body = sink.body
    yield sink
    sink.body = body


@pytest.fixture
def admin_user() -> Any:
    return make_user(roles.ADMIN, username="hook-admin")


def endpoint_for(receiver: RecordingServer, admin: Any, events: list[str] | None = None) -> tuple[WebhookEndpoint, str]:
    return services.webhook_endpoint_create(
        url=f"http://receiver.test:{receiver.port}/hooks/mnl?x=1", events=events or [EVENT], actor=admin
    )


def documented_verifier() -> Any:
    """The `verify` function of docs/api.md's section "Verifying an outgoing webhook", as written."""
    text = DOCS.read_text()
    section = text.split("### Verifying an outgoing webhook", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    lines = code.group(1).strip().splitlines()
    assert len(lines) <= 11, "the verifier is promised in about ten lines"
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)  # noqa: S102 (our own documentation)
    return namespace["verify"]


def test_a_delivery_is_signed_as_documented(
    receiver: RecordingServer, admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint, secret = endpoint_for(receiver, admin_user)
    assert secret.startswith("whsec_") and secret not in endpoint.secret_encrypted
    assert crypto.decrypt_str(endpoint.secret_encrypted) == secret
    with django_capture_on_commit_callbacks(execute=True):
        assert services.outgoing_event_emit(event_type=EVENT, data=DATA) == 1
    (request,) = receiver.wait_for(1)
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == "delivered" and delivery.attempts == 1
    headers = CaseInsensitiveDict(request.headers)
    assert request.method == "POST" and request.path == "/hooks/mnl" and request.query == {"x": "1"}
    # connected to the checked address, with the name in the Host header
    assert headers["Host"] == f"receiver.test:{receiver.port}"
    assert headers["Content-Type"] == "application/json"
    assert headers["Webhook-Id"] == str(delivery.event_id)
    assert re.fullmatch(r"v1=[0-9a-f]{64}", headers["Webhook-Signature"])
    import json

    body = json.loads(request.body)
    assert body["id"] == str(delivery.event_id) and body["type"] == EVENT and body["data"] == DATA

    verify = documented_verifier()
    assert verify(secret, headers, request.body)
    assert not verify(secret, headers, request.body.replace(b"active", b"passive"))
    assert not verify("whsec_wrong", headers, request.body)
    old = CaseInsensitiveDict({**headers, "Webhook-Timestamp": str(int(headers["Webhook-Timestamp"]) - 3600)})
    assert not verify(secret, old, request.body)
    log = WebhookAttempt.objects.get()
    assert (log.status_code, log.ok, log.attempt, log.response_excerpt) == (200, True, 1, "ok")


def test_after_a_renewal_both_secrets_sign_for_a_day(receiver: RecordingServer, admin_user: Any) -> None:
    endpoint, old_secret = endpoint_for(receiver, admin_user)
    new_secret = services.webhook_endpoint_rotate_secret(endpoint=endpoint, actor=admin_user)
    assert new_secret != old_secret
    services.outgoing_event_emit(event_type=EVENT, data=DATA)
    delivery = WebhookDelivery.objects.get()
    services.webhook_delivery_attempt(delivery_id=delivery.pk)
    (request,) = receiver.wait_for(1)
    headers = CaseInsensitiveDict(request.headers)
    assert len(headers["Webhook-Signature"].split()) == 2
    verify = documented_verifier()
    assert verify(new_secret, headers, request.body) and verify(old_secret, headers, request.body)

    receiver.clear()
    services.outgoing_event_emit(event_type=EVENT, data=DATA)
    later = WebhookDelivery.objects.latest("pk")
    tomorrow = timezone.now() + timedelta(hours=25)
    WebhookDelivery.objects.filter(pk=later.pk).update(created_at=tomorrow, next_attempt_at=tomorrow)
    services.webhook_delivery_attempt(delivery_id=later.pk, now=tomorrow)
    (request,) = receiver.wait_for(1)
    assert len(request.headers["webhook-signature"].split()) == 1
    assert AuditEvent.objects.filter(action="webhook_endpoint.secret_rotated").count() == 1


def test_retries_follow_an_exponential_schedule_with_jitter_for_24_hours(
    receiver: RecordingServer, admin_user: Any, settings: Any
) -> None:
    settings.OUTGOING_WEBHOOK_DISABLE_AFTER_HOURS = 1000  # this test is about one event's schedule
    receiver.status = 503
    endpoint_for(receiver, admin_user)
    start = timezone.now()
    services.outgoing_event_emit(event_type=EVENT, data=DATA, at=start)
    delivery = WebhookDelivery.objects.get()
    now, waits = start, []
    for _ in range(40):
        outcome = services.webhook_delivery_attempt(delivery_id=delivery.pk, now=now)
        delivery.refresh_from_db()
        if outcome != "retry":
            break
        waits.append((delivery.next_attempt_at - now).total_seconds())
        # not due a second before its time
        assert (
            services.webhook_delivery_attempt(
                delivery_id=delivery.pk, now=delivery.next_attempt_at - timedelta(seconds=1)
            )
            == "not due"
        )
        now = delivery.next_attempt_at
    assert outcome == "given up" and delivery.state == "failed"
    for number, wait in enumerate(waits, start=1):
        nominal = min(services.RETRY_CAP_SECONDS, services.FIRST_RETRY_SECONDS * 2 ** (number - 1))
        assert 0.8 * nominal <= wait <= 1.2 * nominal, (number, wait)
    assert len(set(waits)) == len(waits), "jitter spreads the waits"
    last = WebhookAttempt.objects.order_by("-attempt").first()
    assert last is not None and last.at - start < timedelta(hours=24)
    assert WebhookAttempt.objects.count() == delivery.attempts == len(waits) + 1
    assert 10 <= delivery.attempts <= 16
    assert len(receiver.received()) == delivery.attempts


def test_a_success_after_failures_resets_the_count(receiver: RecordingServer, admin_user: Any) -> None:
    endpoint, _ = endpoint_for(receiver, admin_user)
    receiver.fail_next(2, status=500)
    services.outgoing_event_emit(event_type=EVENT, data=DATA)
    delivery = WebhookDelivery.objects.get()
    now = timezone.now()
    outcomes = []
    for _ in range(3):
        outcomes.append(services.webhook_delivery_attempt(delivery_id=delivery.pk, now=now))
        delivery.refresh_from_db()
        now = delivery.next_attempt_at
    assert outcomes == ["retry", "retry", "delivered"]
    endpoint.refresh_from_db()
    assert (endpoint.consecutive_failures, endpoint.failing_since) == (0, None)
    ids = {r.headers["webhook-id"] for r in receiver.received()}
    assert ids == {str(delivery.event_id)}, "the same id on every try, so receivers can drop repeats"


def test_repeated_failures_switch_the_endpoint_off_with_mail_and_audit(
    receiver: RecordingServer, admin_user: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.OUTGOING_WEBHOOK_DISABLE_AFTER_FAILURES = 3
    admin_user.language = "en"
    admin_user.save(update_fields=["language"])
    german = make_user(roles.ADMIN, username="hook-admin-de")
    german.language = "de"
    german.save(update_fields=["language"])
    make_user(roles.EDITOR, username="hook-editor")  # no mail for other roles
    endpoint, _ = endpoint_for(receiver, admin_user)
    receiver.status = 500
    for _ in range(3):
        services.outgoing_event_emit(event_type=EVENT, data=DATA)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        outcomes = [services.webhook_delivery_attempt(delivery_id=d.pk) for d in WebhookDelivery.objects.order_by("pk")]
    assert outcomes == ["retry", "retry", "switched off"]
    endpoint.refresh_from_db()
    assert (endpoint.is_active, endpoint.disabled) == (False, "failures")
    audit = AuditEvent.objects.get(action="webhook_endpoint.disabled_after_failures")
    assert audit.actor_label == "system" and audit.details["failures"] == 3
    by_recipient = {m.to[0]: m for m in mail.outbox}
    admins = set(User.objects.filter(groups__name=roles.ADMIN).values_list("email", flat=True))
    assert set(by_recipient) == admins and {admin_user.email, german.email} <= admins  # the editor gets none
    assert by_recipient[admin_user.email].subject.startswith("Outgoing webhook switched off")
    assert by_recipient[german.email].subject.startswith("Ausgehender Webhook abgeschaltet")
    assert endpoint.url in by_recipient[german.email].body

    # switched off: no new events for it, pending ones wait
    assert services.outgoing_event_emit(event_type=EVENT, data=DATA) == 0
    waiting = WebhookDelivery.objects.order_by("pk").first()
    assert waiting is not None
    soon = timezone.now() + timedelta(minutes=5)
    assert services.webhook_delivery_attempt(delivery_id=waiting.pk, now=soon) == "endpoint switched off"

    # the admin's button switches it on again; the waiting events go out
    receiver.status = 200
    receiver.clear()
    client = Client(HTTP_HOST="tenant-a.localhost", HTTP_ACCEPT_LANGUAGE="en")
    enrol_totp(admin_user)
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/messengers/webhookendpoint/{endpoint.pk}/switch/", {"active": "1"})
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.is_active, endpoint.disabled, endpoint.consecutive_failures) == (True, "", 0)
    assert AuditEvent.objects.filter(action="webhook_endpoint.enabled").count() == 1
    assert len(receiver.wait_for(3)) == 3
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"delivered"}


def test_failing_for_24_hours_switches_off_even_with_few_failures(receiver: RecordingServer, admin_user: Any) -> None:
    endpoint, _ = endpoint_for(receiver, admin_user)
    receiver.status = 500
    start = timezone.now()
    services.outgoing_event_emit(event_type=EVENT, data=DATA, at=start)
    first = WebhookDelivery.objects.get()
    assert services.webhook_delivery_attempt(delivery_id=first.pk, now=start) == "retry"
    later = start + timedelta(hours=24, minutes=1)
    services.outgoing_event_emit(event_type=EVENT, data=DATA, at=later)
    second = WebhookDelivery.objects.latest("pk")
    assert services.webhook_delivery_attempt(delivery_id=second.pk, now=later) == "switched off"
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 2 and not endpoint.is_active


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.5", "169.254.169.254", "::1", "::ffff:127.0.0.1"])
def test_a_name_that_turns_private_after_saving_is_refused_at_delivery(
    sink: RecordingServer, names: dict[str, list[str]], admin_user: Any, address: str
) -> None:
    names["rebind.example.org"] = ["93.184.215.14"]
    services.webhook_endpoint_create(
        url=f"https://rebind.example.org:{sink.port}/hook", events=[EVENT], actor=admin_user
    )
    names["rebind.example.org"] = [address]  # DNS rebinding: the next answer points inside
    services.outgoing_event_emit(event_type=EVENT, data=DATA)
    delivery = WebhookDelivery.objects.get()
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "retry"
    log = WebhookAttempt.objects.get()
    assert log.status_code is None and not log.ok
    assert "not a public internet address" in log.error
    assert sink.received() == []


def test_redirects_are_not_followed(receiver: RecordingServer, admin_user: Any) -> None:
    endpoint_for(receiver, admin_user)
    receiver.status = 307  # with our own body; no Location is ever fetched
    services.outgoing_event_emit(event_type=EVENT, data=DATA)
    assert services.webhook_delivery_attempt(delivery_id=WebhookDelivery.objects.get().pk) == "retry"
    assert len(receiver.received()) == 1
    assert WebhookAttempt.objects.get().status_code == 307


def test_the_log_keeps_a_short_plain_excerpt_of_the_answer(receiver: RecordingServer, admin_user: Any) -> None:
    receiver.body = b"<script>alert(1)</script>\x00\x1b[31m\r\n\xe2\x80\xaeevil " + b"x" * 100_000
    receiver.status = 500
    endpoint_for(receiver, admin_user)
    services.outgoing_event_emit(event_type=EVENT, data=DATA)
    services.webhook_delivery_attempt(delivery_id=WebhookDelivery.objects.get().pk)
    excerpt = WebhookAttempt.objects.get().response_excerpt
    assert len(excerpt) == 200
    assert excerpt.startswith("<script>alert(1)</script> [31m evil xxx")
    assert not any(ord(c) < 32 or c == "\u202e" for c in excerpt)


def test_the_outbox_is_purged_after_the_retention(receiver: RecordingServer, admin_user: Any, settings: Any) -> None:
    settings.OUTGOING_WEBHOOK_LOG_DAYS = 30
    endpoint_for(receiver, admin_user)
    services.outgoing_event_emit(event_type=EVENT, data=DATA)
    delivery = WebhookDelivery.objects.get()
    services.webhook_delivery_attempt(delivery_id=delivery.pk)
    assert services.webhook_log_purge(now=timezone.now() + timedelta(days=29)) == 0
    assert services.webhook_log_purge(now=timezone.now() + timedelta(days=31)) == 2  # the event and its log
    assert not WebhookAttempt.objects.exists()


def _self_signed(name: str, directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = timezone.now()
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_https_connects_to_the_checked_address_with_the_name_in_sni_and_verifies_the_certificate(
    names: dict[str, list[str]], admin_user: Any, settings: Any, tmp_path: Path
) -> None:
    """A TLS receiver on loopback with a self-signed certificate for hooks.test: the handshake
    names hooks.test (SNI) although we connect to 127.0.0.1, and the untrusted certificate fails
    the delivery (verification is on)."""
    import socket
    import ssl
    import threading

    cert, key = _self_signed("hooks.test", tmp_path)
    server_names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, server_name, _ctx: server_names.append(server_name)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept_one() -> None:
        conn, _ = listener.accept()
        try:
            context.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            pass  # the client refuses our certificate: expected

    thread = threading.Thread(target=accept_one, daemon=True)
    thread.start()
    settings.OUTGOING_WEBHOOK_TEST_RECEIVER = f"127.0.0.1:{port}"
    names["hooks.test"] = ["127.0.0.1"]
    services.webhook_endpoint_create(url=f"https://hooks.test:{port}/hook", events=[EVENT], actor=admin_user)
    services.outgoing_event_emit(event_type=EVENT, data=DATA)
    assert services.webhook_delivery_attempt(delivery_id=WebhookDelivery.objects.get().pk) == "retry"
    thread.join(5)
    listener.close()
    assert server_names == ["hooks.test"]
    log = WebhookAttempt.objects.get()
    assert log.status_code is None and log.error.startswith("TLS:") and "CERTIFICATE_VERIFY_FAILED" in log.error


def test_the_answer_is_read_with_a_size_cap(receiver: RecordingServer) -> None:
    from messengers.outgoing import transport

    receiver.body = b"y" * 1_000_000
    target = transport.target_check(f"http://receiver.test:{receiver.port}/")
    answer = transport.post(target, b"{}", {"Content-Type": "application/json"})
    assert answer.status == 200 and len(answer.body) == transport.READ_LIMIT


def test_a_receiver_that_never_answers_times_out(names: dict[str, list[str]], settings: Any) -> None:
    import socket
    import time

    from messengers.outgoing import transport

    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel's backlog) and never answers
    port = silent.getsockname()[1]
    settings.OUTGOING_WEBHOOK_TEST_RECEIVER = f"127.0.0.1:{port}"
    names["silent.test"] = ["127.0.0.1"]
    started = time.monotonic()
    answer = transport.post(transport.target_check(f"http://silent.test:{port}/"), b"{}", {}, timeout=0.5)
    silent.close()
    assert answer.status is None and answer.error == "timeout"
    assert time.monotonic() - started < 3
    assert transport.TIMEOUT_SECONDS == 10.0  # what the deliveries use (docs/api.md)
