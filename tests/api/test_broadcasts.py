"""Broadcasts through the API: compose, submit, four-eyes for keys, approve, reject, schedule,
control, send plan and progress; isolation and the audit of the approve scope."""

from __future__ import annotations

from typing import Any

import pytest

from accounts import roles
from accounts.models import AuditEvent
from broadcasts.models import Broadcast
from tenants.models import Tenant
from tests.api.support import api_client, assert_error, make_key
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.factories import make_user

pytestmark = pytest.mark.django_db
U3 = "U3: Störung zwischen Barmbek und Kellinghusenstraße"


def _create(client: Any, channel_id: int, **extra: Any) -> Any:
    body = {"title": "U3 Störung", "texts": {"de": U3}, "channels": [channel_id], **extra}
    return client.post("/api/v1/broadcasts/create/", body, content_type="application/json")


def test_create_submit_and_the_four_eyes_rule_for_keys(tenant: Tenant) -> None:
    channel = make_channel("U3", ["U3"])
    writer, writer_secret = make_key(["broadcasts:write", "broadcasts:read", "broadcasts:approve"])
    client = api_client(writer_secret)
    response = _create(client, channel.pk)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "draft" and body["texts"] == {"de": U3} and body["author"] == writer.user.username
    broadcast_id = body["id"]
    submitted = client.post(f"/api/v1/broadcasts/{broadcast_id}/submit/", content_type="application/json")
    assert submitted.status_code == 200 and submitted.json()["status"] == "submitted"
    # the same key (its user wrote it) may not approve, although it holds the approve scope
    refused = client.post(f"/api/v1/broadcasts/{broadcast_id}/approve/", {}, content_type="application/json")
    assert_error(refused, 400, "rejected")
    assert Broadcast.objects.get(pk=broadcast_id).status == "submitted"
    # another admin's key without the approve scope: 403; with it: approved, and audited
    _, no_scope = make_key(["broadcasts:write", "broadcasts:read"])
    assert_error(
        api_client(no_scope).post(f"/api/v1/broadcasts/{broadcast_id}/approve/", content_type="application/json"),
        403,
        "permission_denied",
    )
    approver_key, approver_secret = make_key(["broadcasts:approve"], role=roles.APPROVER)
    approved = api_client(approver_secret).post(
        f"/api/v1/broadcasts/{broadcast_id}/approve/", content_type="application/json"
    )
    assert approved.status_code == 200, approved.content
    assert approved.json()["status"] in ("approved", "sending", "sent", "scheduled")
    used = AuditEvent.objects.get(action="api_key.approve_used", target_id=str(broadcast_id))
    assert used.details["prefix"] == approver_key.prefix


def test_a_second_key_of_the_same_user_cannot_approve_either(tenant: Tenant) -> None:
    channel = make_channel("U3", ["U3"])
    user = make_user(roles.ADMIN)
    _, first = make_key(["broadcasts:write"], user=user)
    _, second = make_key(["broadcasts:approve"], user=user)
    broadcast_id = _create(api_client(first), channel.pk).json()["id"]
    assert (
        api_client(first)
        .post(f"/api/v1/broadcasts/{broadcast_id}/submit/", content_type="application/json")
        .status_code
        == 200
    )
    assert_error(
        api_client(second).post(f"/api/v1/broadcasts/{broadcast_id}/approve/", content_type="application/json"), 400
    )


def test_reject_update_schedule_cancel(tenant: Tenant) -> None:
    channel = make_channel("U3", ["U3"])
    _, writer = make_key(["broadcasts:write", "broadcasts:read"], role=roles.EDITOR)
    _, approver = make_key(["broadcasts:approve"], role=roles.APPROVER)
    client = api_client(writer)
    broadcast_id = _create(client, channel.pk).json()["id"]
    updated = client.patch(
        f"/api/v1/broadcasts/{broadcast_id}/update/", {"title": "U3 neu"}, content_type="application/json"
    )
    assert updated.status_code == 200 and updated.json()["title"] == "U3 neu"
    assert updated.json()["revision"] == 2
    client.post(f"/api/v1/broadcasts/{broadcast_id}/submit/", content_type="application/json")
    assert_error(
        api_client(approver).post(f"/api/v1/broadcasts/{broadcast_id}/reject/", {}, content_type="application/json"),
        400,
        "invalid",
    )
    rejected = api_client(approver).post(
        f"/api/v1/broadcasts/{broadcast_id}/reject/", {"comment": "Zu lang"}, content_type="application/json"
    )
    assert rejected.json()["status"] == "rejected"
    scheduled = client.post(
        f"/api/v1/broadcasts/{broadcast_id}/schedule/",
        {"scheduled_at": "2030-01-01T08:00:00+01:00"},
        content_type="application/json",
    )
    assert scheduled.status_code == 200 and scheduled.json()["scheduled_at"].startswith("2030-01-01T")
    cancelled = client.post(f"/api/v1/broadcasts/{broadcast_id}/cancel/", content_type="application/json")
    assert cancelled.json()["status"] == "cancelled"
    assert (
        client.post(f"/api/v1/broadcasts/{broadcast_id}/resume/", content_type="application/json").json()["status"]
        == "cancelled"
    )


def test_list_detail_plan_progress_and_isolation(tenant: Tenant, tenant_b: Tenant) -> None:
    channel = make_channel("U3", ["U3"])
    _, secret = make_key(["broadcasts:write", "broadcasts:read"])
    client = api_client(secret)
    ids = [_create(client, channel.pk).json()["id"] for _ in range(3)]
    listing = client.get("/api/v1/broadcasts/?page_size=2")
    assert [row["id"] for row in listing.json()["results"]] == sorted(ids, reverse=True)[:2]
    rest = client.get(listing.json()["next"].split("tenant-a.localhost")[1])
    assert [row["id"] for row in rest.json()["results"]] == [min(ids)]
    assert client.get("/api/v1/broadcasts/?status=sent").json()["results"] == []
    assert client.get(f"/api/v1/broadcasts/{ids[0]}/send-plan/").status_code == 200
    progress = client.get(f"/api/v1/broadcasts/{ids[0]}/progress/").json()
    assert progress["total"] == 0 and progress["status"] == "draft"
    with in_tenant(tenant_b):
        channel_b = make_channel("B", ["BEE"])
    missing = max(ids) + 1000
    for path in ("", "send-plan/", "progress/"):
        assert_error(client.get(f"/api/v1/broadcasts/{missing}/{path}"), 404)
    assert_error(client.post(f"/api/v1/broadcasts/{missing}/submit/"), 404)
    # another tenant's channel id is not a channel here
    if channel_b.pk != channel.pk:
        assert_error(_create(client, channel_b.pk), 400, "invalid")


def test_list_query_count_does_not_grow(tenant: Tenant, django_assert_max_num_queries: Any) -> None:
    channel = make_channel("U3", ["U3"])
    _, secret = make_key(["broadcasts:write", "broadcasts:read"])
    client = api_client(secret)
    for _ in range(12):
        _create(client, channel.pk)
    with django_assert_max_num_queries(12):
        response = client.get("/api/v1/broadcasts/")
    assert len(response.json()["results"]) == 12


def test_idempotent_broadcast_create(tenant: Tenant) -> None:
    channel = make_channel("U3", ["U3"])
    _, secret = make_key(["broadcasts:write"])
    client = api_client(secret)
    body = {"title": "U3", "texts": {"de": U3}, "channels": [channel.pk]}
    first = client.post("/api/v1/broadcasts/create/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="u3")
    again = client.post("/api/v1/broadcasts/create/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="u3")
    assert first.json() == again.json() and Broadcast.objects.count() == 1
