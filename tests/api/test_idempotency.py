"""Idempotency-Key on creates (R7): replay, 409 for another body, and five concurrent creates
with one key making exactly one object (real threads, real transactions)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from accounts import roles
from channels.models import AlarmStateChange
from core.tenancy import connection
from tenants.models import Tenant
from tests.api.support import api_client, assert_error, make_key
from tests.channels.factories import make_channel
from tests.factories import make_user


@pytest.mark.django_db
def test_same_key_same_body_replays_other_body_409(tenant: Tenant) -> None:
    channel = make_channel(is_alarm=True)
    _, secret = make_key()
    client = api_client(secret)
    url = f"/api/v1/channels/{channel.pk}/alarm-state/"
    first = client.post(
        url, {"state": "active", "note": "x"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert first.status_code == 201
    # same JSON, other key order and spacing: the same request
    again = client.post(
        url, '{"note": "x",  "state": "active"}', content_type="application/json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert again.status_code == 201 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert AlarmStateChange.objects.filter(channel=channel).count() == 1
    other = client.post(url, {"state": "inactive"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k1")
    assert_error(other, 409, "idempotency_conflict")
    assert AlarmStateChange.objects.filter(channel=channel).count() == 1
    # without the header every request creates
    client.post(url, {"state": "active"}, content_type="application/json")
    assert AlarmStateChange.objects.filter(channel=channel).count() == 2


@pytest.mark.django_db
def test_keys_are_per_client_and_failures_are_not_kept(tenant: Tenant) -> None:
    channel = make_channel(is_alarm=True)
    _, one = make_key()
    _, two = make_key()
    url = f"/api/v1/channels/{channel.pk}/alarm-state/"
    bad = api_client(one).post(url, {"state": "bogus"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="same")
    assert_error(bad, 400, "invalid")
    good = api_client(one).post(url, {"state": "bogus"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="same")
    assert good.status_code == 400  # an error was not stored: the retry ran again
    assert (
        api_client(one)
        .post(url, {"state": "active"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="same")
        .status_code
        == 201
    )
    assert (
        api_client(two)
        .post(url, {"state": "active"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="same")
        .status_code
        == 201
    )
    assert AlarmStateChange.objects.filter(channel=channel).count() == 2
    long_key = api_client(one).post(
        url, {"state": "active"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="x" * 256
    )
    assert_error(long_key, 400)


def test_five_concurrent_creates_with_one_key_make_one_object(committed_tenant: Callable[..., Tenant]) -> None:
    tenant = committed_tenant()
    connection.set_tenant(tenant)
    channel = make_channel(is_alarm=True)
    _, secret = make_key(user=make_user(roles.ADMIN))
    domain = tenant.get_primary_domain().domain
    connection.set_schema_to_public()
    url = f"/api/v1/channels/{channel.pk}/alarm-state/"
    barrier = threading.Barrier(5)
    results: list[tuple[int, dict[str, object]]] = []

    def post() -> None:
        from django.db import connections

        try:
            client = api_client(secret, domain=domain)
            barrier.wait()
            response = client.post(url, {"state": "active"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="r7")
            results.append((response.status_code, response.json()))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [status for status, _ in results] == [201] * 5
    assert len({body["id"] for _, body in results}) == 1
    connection.set_tenant(tenant)
    assert AlarmStateChange.objects.filter(channel=channel).count() == 1
    connection.set_schema_to_public()


@pytest.mark.django_db
def test_records_older_than_a_day_are_purged(tenant: Tenant) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import IdempotencyRecord
    from accounts.services import idempotency_purge
    from core.schedules import schedules_collect

    old = IdempotencyRecord.objects.create(owner="key:1", key="a", request_hash="x", status_code=201, response={})
    IdempotencyRecord.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    IdempotencyRecord.objects.create(owner="key:1", key="b", request_hash="x", status_code=201, response={})
    assert idempotency_purge() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["b"]
    assert "api-idempotency-purge" in {s.name for s in schedules_collect()}
