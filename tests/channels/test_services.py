"""Channel services: keyword normalisation and uniqueness, alarm state changes and their hooks."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from accounts import roles
from accounts.models import AuditEvent
from channels.models import AlarmStateChange, Channel
from channels.services import (
    KEYWORD_RESERVED,
    KEYWORD_TAKEN,
    NOT_AN_ALARM_CHANNEL,
    channel_create,
    channel_set_alarm_state,
    channel_update,
)
from core.errors import ApplicationError
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.factories import make_user
from tests.subscribers.factories import sandbox

HOOK_CALLS: list[dict[str, Any]] = []


def record_hook(*, channel: Channel, change: AlarmStateChange, actor: Any) -> None:
    HOOK_CALLS.append({"channel": channel.slug, "from": change.from_state, "to": change.to_state, "actor": actor})


def test_keywords_are_stored_normalised_and_deduplicated(tenant: Tenant) -> None:
    channel = channel_create(name="Feinstaubalarm", keywords=["Feinstaub!", "feinstaubalarm", "FEINSTAUB"])
    assert channel.keywords == ["FEINSTAUB", "FEINSTAUBALARM"]
    assert channel.slug == "feinstaubalarm"
    assert AuditEvent.objects.filter(action="channel.created", target_id=str(channel.pk)).exists()


def test_keywords_from_a_comma_separated_text(tenant: Tenant) -> None:
    channel = channel_create(name="Süd", keywords="süd, Sued;  ")
    assert channel.keywords == ["SUED"]  # SÜD and SUED are the same keyword


def test_a_keyword_can_belong_to_one_channel_only_whatever_its_spelling(tenant: Tenant) -> None:
    channel_create(name="Bezirk Süd", keywords=["SÜD"])
    with pytest.raises(ApplicationError) as error:
        channel_create(name="Südwest", keywords=["sud"])
    assert error.value.message == KEYWORD_TAKEN.format(keyword="SUD", channel="Bezirk Süd")


def test_command_words_cannot_be_keywords(tenant: Tenant) -> None:
    with pytest.raises(ApplicationError) as error:
        channel_create(name="Hilfe", keywords=["hilfe"])
    assert error.value.message == KEYWORD_RESERVED.format(keyword="HILFE")


def test_a_keyword_is_one_word(tenant: Tenant) -> None:
    with pytest.raises(ApplicationError, match="one word"):
        channel_create(name="Bad Cannstatt", keywords=["Bad Cannstatt"])


def test_slugs_are_made_unique_and_updates_keep_their_own_keywords(tenant: Tenant) -> None:
    first = channel_create(name="Verkehr", keywords=["VERKEHR"])
    second = channel_create(name="Verkehr")
    assert (first.slug, second.slug) == ("verkehr", "verkehr-2")
    channel_update(channel=first, keywords=["verkehr", "stau"], description="Staus")
    first.refresh_from_db()
    assert first.keywords == ["VERKEHR", "STAU"] and first.description == "Staus"


def test_connections_are_set_through_the_service(tenant: Tenant) -> None:
    channel = channel_create(name="Verkehr", connections=[sandbox()])
    assert list(channel.connections.all()) == [sandbox()]
    channel_update(channel=channel, connections=[])
    assert not channel.connections.exists()


@override_settings(ALARM_STATE_HOOKS=["tests.channels.test_services.record_hook"])
def test_alarm_state_change_is_recorded_audited_and_handed_to_the_hooks(tenant: Tenant) -> None:
    HOOK_CALLS.clear()
    editor = make_user(roles.EDITOR)
    channel = make_channel(is_alarm=True)
    change = channel_set_alarm_state(channel=channel, state="active", actor=editor, note="PM10 über 50")
    channel.refresh_from_db()
    assert channel.alarm_state == "active" and channel.alarm_state_changed_at is not None
    assert (change.from_state, change.to_state, change.changed_by, change.note) == (
        "inactive",
        "active",
        editor,
        "PM10 über 50",
    )
    assert [{"channel": channel.slug, "from": "inactive", "to": "active", "actor": editor}] == HOOK_CALLS
    audit = AuditEvent.objects.get(action="channel.alarm_state_changed")
    assert audit.details == {"from": "inactive", "to": "active", "note": "PM10 über 50"}


@override_settings(ALARM_STATE_HOOKS=["tests.channels.test_services.record_hook"])
def test_the_same_state_again_is_an_update_that_keeps_the_start_time(tenant: Tenant) -> None:
    HOOK_CALLS.clear()
    channel = make_channel(is_alarm=True)
    channel_set_alarm_state(channel=channel, state="active", actor_label="api:sensor-network")
    since = Channel.objects.get(pk=channel.pk).alarm_state_changed_at
    channel_set_alarm_state(channel=channel, state="active", actor_label="api:sensor-network")
    assert Channel.objects.get(pk=channel.pk).alarm_state_changed_at == since
    assert [(c["from"], c["to"]) for c in HOOK_CALLS] == [("inactive", "active"), ("active", "active")]
    assert AlarmStateChange.objects.filter(channel=channel).count() == 2
    assert set(AlarmStateChange.objects.values_list("changed_by_label", flat=True)) == {"api:sensor-network"}


def test_only_alarm_channels_have_a_state(tenant: Tenant) -> None:
    channel = make_channel()
    with pytest.raises(ApplicationError) as error:
        channel_set_alarm_state(channel=channel, state="active")
    assert error.value.message == NOT_AN_ALARM_CHANNEL.format(channel=channel.name)
    with pytest.raises(ApplicationError, match="Unknown alarm state"):
        channel_set_alarm_state(channel=make_channel("Alarm", ["ALARM"], is_alarm=True), state="burning")
    assert not AlarmStateChange.objects.exists()
