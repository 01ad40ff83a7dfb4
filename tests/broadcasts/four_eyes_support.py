"""Shared setup for the four-eyes tests (services in test_four_eyes.py, the admin pages in
test_four_eyes_admin.py): a team of every role, a submitted or bypassed broadcast, and a reader for
its status."""

from __future__ import annotations

from typing import Any

import pytest

from accounts import roles
from broadcasts import services
from broadcasts.models import Broadcast
from messengers.selectors import connection_sandbox
from tenants.models import Tenant
from tests.broadcasts.factories import make_subscribers
from tests.channels.factories import make_channel
from tests.factories import make_user
from tests.helpers import enrol_totp

S = Broadcast.Status
TEXT = {"de": "Ab morgen gilt Feinstaubalarm.", "en": "Particulate alarm from tomorrow."}


@pytest.fixture
def team(tenant: Tenant) -> dict[str, Any]:
    sandbox = connection_sandbox()
    assert sandbox is not None
    channel = make_channel("Feinstaub", ["FEINSTAUB"], connections=[sandbox], is_alarm=True, default_priority="alert")
    other = make_channel("Verkehr", ["VERKEHR"], connections=[sandbox])
    make_subscribers(2, [channel, other], sandbox)
    people = {
        "editor": make_user(roles.EDITOR, username="rita"),
        "approver": make_user(roles.APPROVER, username="ob"),
        "approver2": make_user(roles.APPROVER, username="press"),
        "admin": make_user(roles.ADMIN, username="chef"),
        "agent": make_user(roles.INBOX_AGENT, username="buergerbuero"),
    }
    for role in ("approver", "approver2", "admin"):
        enrol_totp(people[role])
    return {"channel": channel, "other": other, "sandbox": sandbox, **people}


def submitted(team: dict[str, Any], author: str = "editor", **kwargs: Any) -> Broadcast:
    broadcast = services.broadcast_create(
        author=team[author],
        title="Feinstaubalarm ab morgen",
        variants=dict(TEXT),
        channels=[team["channel"]],
        **kwargs,
    )
    return services.broadcast_submit(broadcast=broadcast, actor=team[author])


def status(broadcast: Broadcast) -> str:
    return Broadcast.objects.get(pk=broadcast.pk).status


def bypassed(team: dict[str, Any], author: str = "editor") -> Broadcast:
    broadcast = services.broadcast_create(
        author=team[author], title="Alarm", variants=dict(TEXT), channels=[team["channel"]]
    )
    services.broadcast_send_without_approval(broadcast=broadcast, actor=team["admin"])
    return Broadcast.objects.get(pk=broadcast.pk)
