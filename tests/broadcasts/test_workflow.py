"""The approval workflow, enforced in the services."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts import roles
from accounts.models import AuditEvent
from broadcasts import schedule, services
from broadcasts.models import Broadcast
from core.errors import ApplicationError
from messengers.selectors import connection_sandbox
from tenants.models import DueWork, Tenant
from tests.broadcasts.factories import make_subscribers
from tests.channels.factories import make_channel
from tests.factories import make_user

S = Broadcast.Status


@pytest.fixture
def setup(tenant: Tenant) -> dict[str, Any]:
    sandbox = connection_sandbox()
    assert sandbox is not None
    channel = make_channel(
        "Feinstaub", ["FEINSTAUB"], connections=[sandbox], is_alarm=True, default_priority="alert",
        alarm_text_start="Feinstaub: Alarm!", alarm_text_end="Feinstaub: Entwarnung.",
    )  # fmt: skip
    open_channel = make_channel("Verkehr", ["VERKEHR"], connections=[sandbox], requires_approval=False)
    make_subscribers(3, [channel, open_channel], sandbox)
    return {
        "tenant": tenant,
        "sandbox": sandbox,
        "channel": channel,
        "open_channel": open_channel,
        "editor": make_user(roles.EDITOR, username="rita"),
        "approver": make_user(roles.APPROVER, username="ob"),
        "approver2": make_user(roles.APPROVER, username="press"),
        "admin": make_user(roles.ADMIN, username="chef"),
    }


def draft(setup: dict[str, Any], **kwargs: Any) -> Broadcast:
    params = {
        "author": setup["editor"],
        "title": "Feinstaubalarm ab morgen",
        "variants": {"de": "Ab morgen gilt Feinstaubalarm.", "en": "Particulate alarm from tomorrow."},
        "channels": [setup["channel"]],
    }
    return services.broadcast_create(**{**params, **kwargs})


def due_rows(tenant: Tenant, broadcast: Broadcast) -> list[DueWork]:
    with schema_context("public"):
        return list(DueWork.objects.filter(tenant_id=tenant.pk, object_id=broadcast.pk))


def test_full_happy_path_is_audited(setup: dict[str, Any]) -> None:
    broadcast = draft(setup)
    services.broadcast_submit(broadcast=broadcast, actor=setup["editor"])
    assert Broadcast.objects.get(pk=broadcast.pk).status == S.SUBMITTED
    services.broadcast_approve(broadcast=broadcast, actor=setup["approver"])
    broadcast.refresh_from_db()
    assert broadcast.status == S.APPROVED and broadcast.approved_by == setup["approver"]
    assert [r.kind for r in due_rows(setup["tenant"], broadcast)] == ["broadcast-start"]
    actions = list(
        AuditEvent.objects.filter(target_type="broadcasts.broadcast", target_id=str(broadcast.pk))
        .order_by("id")
        .values_list("action", "actor")
    )
    assert actions == [
        ("broadcast.created", setup["editor"].pk),
        ("broadcast.submitted", setup["editor"].pk),
        ("broadcast.approved", setup["approver"].pk),
    ]


def test_author_can_never_approve_own_broadcast(setup: dict[str, Any]) -> None:
    approver = setup["approver"]
    broadcast = draft(setup, author=approver)  # an approver who writes
    services.broadcast_submit(broadcast=broadcast, actor=approver)
    with pytest.raises(ApplicationError, match="four-eyes"):
        services.broadcast_approve(broadcast=broadcast, actor=approver)
    assert Broadcast.objects.get(pk=broadcast.pk).status == S.SUBMITTED
    assert AuditEvent.objects.filter(action="broadcast.self_approval_refused").exists()
    services.broadcast_approve(broadcast=broadcast, actor=setup["approver2"])
    assert Broadcast.objects.get(pk=broadcast.pk).status == S.APPROVED


def test_editors_cannot_approve(setup: dict[str, Any]) -> None:
    broadcast = draft(setup, author=setup["admin"])
    services.broadcast_submit(broadcast=broadcast, actor=setup["admin"])
    with pytest.raises(ApplicationError, match="approver role"):
        services.broadcast_approve(broadcast=broadcast, actor=setup["editor"])


def test_reject_needs_a_comment_and_editing_reopens(setup: dict[str, Any]) -> None:
    broadcast = draft(setup)
    services.broadcast_submit(broadcast=broadcast, actor=setup["editor"])
    with pytest.raises(ApplicationError, match="Say why"):
        services.broadcast_reject(broadcast=broadcast, actor=setup["approver"], comment=" ")
    services.broadcast_reject(broadcast=broadcast, actor=setup["approver"], comment="Bitte Uhrzeit ergänzen")
    broadcast.refresh_from_db()
    assert broadcast.status == S.REJECTED and broadcast.rejection_comment == "Bitte Uhrzeit ergänzen"
    services.broadcast_update(
        broadcast=broadcast, actor=setup["editor"], variants={"de": "Ab morgen 6 Uhr gilt Feinstaubalarm."}
    )
    assert Broadcast.objects.get(pk=broadcast.pk).status == S.DRAFT
    services.broadcast_submit(broadcast=broadcast, actor=setup["editor"])
    assert Broadcast.objects.get(pk=broadcast.pk).status == S.SUBMITTED


def test_approved_content_is_frozen(setup: dict[str, Any]) -> None:
    future = timezone.now() + timedelta(days=1)
    broadcast = draft(setup, scheduled_at=future)
    services.broadcast_submit(broadcast=broadcast, actor=setup["editor"])
    services.broadcast_approve(broadcast=broadcast, actor=setup["approver"])
    assert Broadcast.objects.get(pk=broadcast.pk).status == S.SCHEDULED
    services.broadcast_update(broadcast=broadcast, actor=setup["editor"], variants={"de": "Geänderter Text"})
    broadcast.refresh_from_db()
    assert broadcast.status == S.SUBMITTED and broadcast.approved_by is None
    assert due_rows(setup["tenant"], broadcast) == []  # no longer due
    assert AuditEvent.objects.filter(action="broadcast.reopened", target_id=str(broadcast.pk)).exists()


def test_unchanged_save_keeps_approval(setup: dict[str, Any]) -> None:
    broadcast = draft(setup, scheduled_at=timezone.now() + timedelta(days=1))
    services.broadcast_submit(broadcast=broadcast, actor=setup["editor"])
    services.broadcast_approve(broadcast=broadcast, actor=setup["approver"])
    services.broadcast_update(
        broadcast=broadcast,
        actor=setup["editor"],
        variants={"de": "Ab morgen gilt Feinstaubalarm.", "en": "Particulate alarm from tomorrow."},
    )
    assert Broadcast.objects.get(pk=broadcast.pk).status == S.SCHEDULED


def test_channels_without_approval_skip_the_step(setup: dict[str, Any]) -> None:
    broadcast = draft(setup, channels=[setup["open_channel"]])
    services.broadcast_submit(broadcast=broadcast, actor=setup["editor"])
    broadcast.refresh_from_db()
    assert broadcast.status == S.APPROVED and broadcast.approved_by is None
    assert AuditEvent.objects.get(action="broadcast.approved", target_id=str(broadcast.pk)).details["note"]


def test_emergency_bypass_only_for_admins_and_alerts_and_flags_review(setup: dict[str, Any]) -> None:
    broadcast = draft(setup, author=setup["admin"])
    assert broadcast.priority == "alert"  # the alarm channel's default
    with pytest.raises(ApplicationError, match="Only administrators"):
        services.broadcast_send_without_approval(broadcast=broadcast, actor=setup["editor"])
    normal = draft(setup, author=setup["admin"], channels=[setup["open_channel"]])
    with pytest.raises(ApplicationError, match="only possible for alert"):
        services.broadcast_send_without_approval(broadcast=normal, actor=setup["admin"])
    services.broadcast_send_without_approval(broadcast=broadcast, actor=setup["admin"])
    broadcast.refresh_from_db()
    assert broadcast.status == S.APPROVED and broadcast.bypassed_approval and broadcast.needs_review
    services.broadcast_review(broadcast=broadcast, actor=setup["approver"], comment="ok")
    broadcast.refresh_from_db()
    assert not broadcast.needs_review and broadcast.reviewed_by == setup["approver"]


def test_cancel_from_scheduled_removes_due_work(setup: dict[str, Any]) -> None:
    broadcast = draft(setup, scheduled_at=timezone.now() + timedelta(hours=2))
    services.broadcast_submit(broadcast=broadcast, actor=setup["editor"])
    services.broadcast_approve(broadcast=broadcast, actor=setup["approver"])
    services.broadcast_cancel(broadcast=broadcast, actor=setup["editor"])
    assert Broadcast.objects.get(pk=broadcast.pk).status == S.CANCELLED
    assert due_rows(setup["tenant"], broadcast) == []
    with pytest.raises(ApplicationError):
        services.broadcast_cancel(broadcast=broadcast, actor=setup["editor"])


BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("local", "priority", "expected"),
    [
        (datetime(2026, 11, 23, 23, 30, tzinfo=BERLIN), "normal", datetime(2026, 11, 24, 7, 0, tzinfo=BERLIN)),
        (datetime(2026, 11, 24, 6, 59, tzinfo=BERLIN), "normal", datetime(2026, 11, 24, 7, 0, tzinfo=BERLIN)),
        (datetime(2026, 11, 24, 7, 0, tzinfo=BERLIN), "normal", datetime(2026, 11, 24, 7, 0, tzinfo=BERLIN)),
        (datetime(2026, 11, 23, 21, 59, tzinfo=BERLIN), "normal", datetime(2026, 11, 23, 21, 59, tzinfo=BERLIN)),
        (datetime(2026, 11, 23, 23, 30, tzinfo=BERLIN), "alert", datetime(2026, 11, 23, 23, 30, tzinfo=BERLIN)),
    ],
)
def test_quiet_hours_hold_normal_broadcasts_but_never_alerts(
    setup: dict[str, Any], local: datetime, priority: str, expected: datetime
) -> None:
    tenant = setup["tenant"]
    tenant.quiet_hours_start, tenant.quiet_hours_end = time(22, 0), time(7, 0)
    broadcast = draft(setup, priority=priority, scheduled_at=local)
    assert schedule.due_time(broadcast, tenant) == expected


def test_quiet_hours_schedule_the_broadcast_for_the_morning(setup: dict[str, Any]) -> None:
    tenant = setup["tenant"]
    # quiet from an hour ago until two hours from now, whatever the time of day (it may wrap midnight)
    local_now = timezone.now().astimezone(BERLIN).replace(second=0, microsecond=0)
    start, end = (local_now - timedelta(hours=1)).time(), (local_now + timedelta(hours=2)).time()
    tenant.quiet_hours_start, tenant.quiet_hours_end = start, end
    broadcast = draft(setup, channels=[setup["open_channel"]], priority="normal")
    services.broadcast_submit(broadcast=broadcast, actor=setup["editor"])
    broadcast.refresh_from_db()
    assert broadcast.status == S.SCHEDULED
    (row,) = due_rows(tenant, broadcast)
    assert row.due_at.astimezone(BERLIN).time() == end
    assert timedelta(hours=1) < row.due_at - timezone.now() <= timedelta(hours=2)


def test_alarm_state_change_proposes_a_draft(setup: dict[str, Any]) -> None:
    from channels.models import AlarmStateChange, Channel

    channel = setup["channel"]
    change = AlarmStateChange.objects.create(channel=channel, from_state="inactive", to_state="active")
    proposal = services.broadcast_propose_for_alarm(channel=channel, change=change, actor=setup["editor"])
    assert proposal is not None and proposal.status == S.DRAFT and proposal.priority == "alert"
    assert proposal.variants.get(language="de").body == "Feinstaub: Alarm!"
    assert list(proposal.channels.all()) == [channel]
    end = AlarmStateChange.objects.create(channel=channel, from_state="active", to_state=Channel.AlarmState.ALL_CLEAR)
    all_clear = services.broadcast_propose_for_alarm(channel=channel, change=end, actor=None)
    assert all_clear is not None and all_clear.variants.get().body == "Feinstaub: Entwarnung."


@pytest.mark.parametrize("shift", [timedelta(hours=3), timedelta(minutes=30)])
def test_moving_the_send_time_of_a_scheduled_broadcast_moves_its_start(setup: dict[str, Any], shift: timedelta) -> None:
    """Only the send time changes: no new approval, but the start follows the new time (later or
    earlier), and the change is in the history."""
    first = timezone.now() + timedelta(hours=2)
    broadcast = draft(setup, scheduled_at=first)
    services.broadcast_submit(broadcast=broadcast, actor=setup["editor"])
    services.broadcast_approve(broadcast=broadcast, actor=setup["approver"])
    (row,) = due_rows(setup["tenant"], broadcast)
    assert row.due_at == first
    moved = first - timedelta(hours=2) + shift
    services.broadcast_update(broadcast=broadcast, actor=setup["editor"], scheduled_at=moved)
    broadcast.refresh_from_db()
    assert broadcast.status == S.SCHEDULED and broadcast.approved_by == setup["approver"]
    (row,) = due_rows(setup["tenant"], broadcast)
    assert row.due_at == moved and row.enqueued_at is None
    assert AuditEvent.objects.filter(action="broadcast.rescheduled", target_id=str(broadcast.pk)).exists()


def test_moving_the_send_time_to_now_starts_it(setup: dict[str, Any]) -> None:
    broadcast = draft(setup, scheduled_at=timezone.now() + timedelta(hours=2))
    services.broadcast_submit(broadcast=broadcast, actor=setup["editor"])
    services.broadcast_approve(broadcast=broadcast, actor=setup["approver"])
    services.broadcast_update(broadcast=broadcast, actor=setup["editor"], scheduled_at=None)
    (row,) = due_rows(setup["tenant"], broadcast)
    assert row.due_at <= timezone.now()


def test_a_start_that_comes_before_the_send_time_waits_for_it(setup: dict[str, Any]) -> None:
    """A start task queued for an earlier send time (or by the dispatcher from a stale row) must
    not send a broadcast whose time has been moved later."""
    later = timezone.now() + timedelta(hours=2)
    broadcast = draft(setup, scheduled_at=later)
    services.broadcast_submit(broadcast=broadcast, actor=setup["editor"])
    services.broadcast_approve(broadcast=broadcast, actor=setup["approver"])
    assert services.broadcast_start(broadcast_id=broadcast.pk) == "not due yet"
    broadcast.refresh_from_db()
    assert broadcast.status == S.SCHEDULED
    (row,) = due_rows(setup["tenant"], broadcast)
    assert row.kind == "broadcast-start" and row.due_at == later


def test_whoever_submits_a_draft_nobody_wrote_cannot_approve_it(setup: dict[str, Any]) -> None:
    """An alarm state change without a person (a sensor) proposes a draft with no author; the
    approver who submits it unchanged would otherwise be the only pair of eyes on it."""
    from channels.models import AlarmStateChange

    channel = setup["channel"]
    change = AlarmStateChange.objects.create(channel=channel, from_state="inactive", to_state="active")
    proposal = services.broadcast_propose_for_alarm(channel=channel, change=change, actor=None)
    assert proposal is not None and proposal.author_id is None
    services.broadcast_submit(broadcast=proposal, actor=setup["approver"])
    with pytest.raises(ApplicationError):
        services.broadcast_approve(broadcast=proposal, actor=setup["approver"])
    services.broadcast_approve(broadcast=proposal, actor=setup["approver2"])
    proposal.refresh_from_db()
    assert proposal.status in (S.APPROVED, S.SCHEDULED) and proposal.author == setup["approver"]
