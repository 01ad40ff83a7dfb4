"""The tenant admin's outgoing webhooks: only administrators set them up; the secret is shown
once and stored encrypted; refused addresses are explained; the delivery log escapes the
answer's excerpt, costs the same queries for 3 or 30 rows, and shows tenant A nothing of B."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts import roles
from accounts.models import AuditEvent, User
from core import crypto
from core.errors import ApplicationError
from messengers.outgoing import services
from messengers.outgoing.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tenants.models import Tenant
from tests.conftest import TENANT_A, TENANT_B, in_tenant
from tests.factories import make_user
from tests.helpers import enrol_totp, query_count
from tests.messengers import outgoing_support

pytestmark = pytest.mark.usefixtures("tenant")

LIST = "/admin/messengers/webhookendpoint/"
ADD = LIST + "add/"
LOG = "/admin/messengers/webhookattempt/"


@pytest.fixture
def names(settings: Any) -> Iterator[dict[str, list[str]]]:
    settings.NETGUARD_RESOLVER = "tests.messengers.outgoing_support.table_resolve"
    outgoing_support.NAMES.clear()
    outgoing_support.NAMES["crm.example.org"] = ["93.184.215.14"]
    outgoing_support.NAMES["intranet.example.org"] = ["10.1.2.3"]
    yield outgoing_support.NAMES
    outgoing_support.NAMES.clear()


def login(role: str, host: str = TENANT_A[1]) -> tuple[Client, User]:
    user = make_user(role)
    enrol_totp(user)
    client = Client(HTTP_HOST=host, HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client, user


def endpoint_with_log(admin: User, attempts: int, *, excerpt: str = "ok") -> WebhookEndpoint:
    endpoint, _ = services.webhook_endpoint_create(
        url="https://crm.example.org/hook", events=["alarm.state_changed"], actor=admin
    )
    now = timezone.now()
    for number in range(attempts):
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint, event_type="alarm.state_changed", payload={}, created_at=now, next_attempt_at=now
        )
        WebhookAttempt.objects.create(
            endpoint=endpoint, delivery=delivery, at=now, event_type="alarm.state_changed", attempt=number + 1,
            status_code=500, duration_ms=12, ok=False, response_excerpt=excerpt,
        )  # fmt: skip
    return endpoint


@pytest.mark.parametrize("role", [roles.EDITOR, roles.APPROVER, roles.INBOX_AGENT])
def test_only_administrators_see_or_change_outgoing_webhooks(names: Any, role: str) -> None:
    admin = make_user(roles.ADMIN)
    endpoint = endpoint_with_log(admin, 1)
    client, user = login(role)
    for url in (LIST, ADD, f"{LIST}{endpoint.pk}/change/", LOG):
        assert client.get(url).status_code == 403, url
    for url in (f"{LIST}{endpoint.pk}/rotate/", f"{LIST}{endpoint.pk}/switch/"):
        assert client.post(url, {"active": "0"}).status_code == 403, url
    assert client.post(ADD, {"url": "https://crm.example.org/x", "events": ["alarm.state_changed"]}).status_code == 403
    with pytest.raises(ApplicationError) as refused:
        services.webhook_endpoint_create(url="https://crm.example.org/x", events=["alarm.state_changed"], actor=user)
    assert refused.value.message == services.NOT_AN_ADMIN
    with pytest.raises(ApplicationError):
        services.webhook_endpoint_rotate_secret(endpoint=endpoint, actor=user)
    endpoint.refresh_from_db()
    assert endpoint.is_active and WebhookEndpoint.objects.count() == 1


def test_an_admin_adds_a_webhook_and_sees_its_secret_once(names: Any) -> None:
    client, _ = login(roles.ADMIN)
    assert client.get(ADD).status_code == 200
    response = client.post(
        ADD, {"url": "https://crm.example.org/hook", "description": "CRM", "events": ["message.received"]}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]
    endpoint = WebhookEndpoint.objects.get()
    secret = crypto.decrypt_str(endpoint.secret_encrypted)
    assert secret in response.content.decode()
    assert secret not in endpoint.secret_encrypted
    assert AuditEvent.objects.filter(action="webhook_endpoint.created").count() == 1
    change = client.get(f"{LIST}{endpoint.pk}/change/").content.decode()
    assert secret not in change and endpoint.secret_hint in change

    renewed = client.post(f"{LIST}{endpoint.pk}/rotate/")
    endpoint.refresh_from_db()
    new_secret = crypto.decrypt_str(endpoint.secret_encrypted)
    assert new_secret != secret and new_secret in renewed.content.decode()
    assert client.get(f"{LIST}{endpoint.pk}/rotate/").status_code == 403  # only by the form's POST


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://intranet.example.org/hook", "not a public internet address"),
        ("https://169.254.169.254/latest/meta-data", "not a public internet address"),
        ("https://2130706433/hook", "spells an IP address"),
        ("http://crm.example.org/hook", "does not use https"),
    ],
)
def test_refused_addresses_are_explained_and_nothing_is_saved(names: Any, url: str, says: str) -> None:
    client, _ = login(roles.ADMIN)
    response = client.post(ADD, {"url": url, "events": ["message.received"]}, follow=True)
    assert says in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_the_log_escapes_the_excerpt_and_its_queries_do_not_grow(names: Any) -> None:
    admin = make_user(roles.ADMIN)
    client, _ = login(roles.ADMIN)
    endpoint = endpoint_with_log(admin, 3, excerpt="<script>alert(1)</script>")
    few, page = query_count(client, f"{LOG}?endpoint__id__exact={endpoint.pk}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    endpoint_with_log(admin, 30)
    many, page = query_count(client, LOG)
    assert many == few, (few, many)
    assert page.count('class="field-at"') >= 33 or page.count("<tr") >= 33


def test_tenant_a_admin_sees_nothing_of_tenant_b(names: Any, tenant_b: Tenant) -> None:
    with in_tenant(tenant_b):
        b_admin = make_user(roles.ADMIN)
        outgoing_support.NAMES["b-only.example.org"] = ["93.184.215.15"]
        b_endpoint, _ = services.webhook_endpoint_create(
            url="https://b-only.example.org/hook", events=["alarm.state_changed"], actor=b_admin
        )
        endpoint_with_log(b_admin, 2, excerpt="B's answer")
        b_attempt = WebhookAttempt.objects.first()
        assert b_attempt is not None
    client, _ = login(roles.ADMIN)
    assert "b-only.example.org" not in client.get(LIST).content.decode()
    assert "B&#x27;s answer" not in client.get(LOG).content.decode()
    assert client.get(f"{LOG}{b_attempt.pk}/change/").status_code in (302, 404)
    assert client.get(f"{LIST}{b_endpoint.pk}/change/").status_code in (302, 404)
    # A's session means nothing on B's domain
    b_client = Client(HTTP_HOST=TENANT_B[1], HTTP_ACCEPT_LANGUAGE="en")
    b_client.cookies = client.cookies
    assert b_client.get(LOG).status_code == 302


def test_the_pages_read_german(names: Any) -> None:
    """The walk of tests/core/test_german_pages.py finds no webhook in the demo data, so its
    change page, the log with rows and the secret page are walked here."""
    from tests.core.german_text import english_lines, visible_text

    admin = make_user(roles.ADMIN)
    admin.language = "de"
    admin.save(update_fields=["language"])
    enrol_totp(admin)
    client = Client(HTTP_HOST=TENANT_A[1], HTTP_ACCEPT_LANGUAGE="de")
    client.force_login(admin)
    endpoint = endpoint_with_log(admin, 2, excerpt="Fehler")
    services.webhook_endpoint_set_active(endpoint=endpoint, active=False, actor=admin)
    allowed = frozenset({"admin", "system", "test_a", "crm.example.org"})
    pages = {
        "change": client.get(f"{LIST}{endpoint.pk}/change/"),
        "list": client.get(LIST),
        "log": client.get(LOG),
        "log entry": client.get(f"{LOG}{WebhookAttempt.objects.first().pk}/change/"),  # type: ignore[union-attr]
        "secret": client.post(f"{LIST}{endpoint.pk}/rotate/"),
    }
    found = {}
    for name, response in pages.items():
        assert response.status_code == 200, name
        lines = english_lines(visible_text(response.content.decode()), allowed=allowed)
        if lines:
            found[name] = lines
    assert not found, found


def test_rotate_secrets_moves_webhook_secrets_to_the_new_key(names: Any) -> None:
    import io

    from django.core.management import call_command
    from django.test import override_settings

    old_key, new_key = crypto.generate_key(), crypto.generate_key()
    with override_settings(FERNET_KEYS=[old_key]):
        endpoint, secret = services.webhook_endpoint_create(
            url="https://crm.example.org/hook", events=["alarm.state_changed"], actor=make_user(roles.ADMIN)
        )
    out = io.StringIO()
    with override_settings(FERNET_KEYS=[new_key, old_key]):
        call_command("rotate_secrets", stdout=out)
    assert "1 outgoing webhook secret(s) re-encrypted" in out.getvalue()
    endpoint.refresh_from_db()
    with override_settings(FERNET_KEYS=[new_key]):  # the old key can go
        assert crypto.decrypt_str(endpoint.secret_encrypted) == secret


def test_an_admin_deletes_a_webhook_with_its_log(names: Any) -> None:
    admin = make_user(roles.ADMIN)
    endpoint = endpoint_with_log(admin, 50)
    client, _ = login(roles.ADMIN)
    _queries, page = query_count(client, f"{LIST}{endpoint.pk}/delete/")
    assert "crm.example.org" in page and "→ 500" not in page  # the webhook is named, not its 50 log rows
    response = client.post(f"{LIST}{endpoint.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not WebhookEndpoint.objects.exists() and not WebhookAttempt.objects.exists()
    assert AuditEvent.objects.filter(action="webhook_endpoint.deleted").count() == 1
