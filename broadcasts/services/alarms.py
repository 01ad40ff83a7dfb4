"""Alarm channels (settings.ALARM_STATE_HOOKS): a state change proposes the standard draft."""

from __future__ import annotations

from typing import Any

from accounts.models import User
from broadcasts.models import Broadcast
from broadcasts.services.composing import broadcast_create
from channels.models import Channel, Priority


def broadcast_propose_for_alarm(*, channel: Channel, change: Any, actor: User | None) -> Broadcast | None:
    texts = {
        Channel.AlarmState.ANNOUNCED: channel.alarm_text_update or channel.alarm_text_start,
        Channel.AlarmState.ACTIVE: channel.alarm_text_start,
        Channel.AlarmState.ALL_CLEAR: channel.alarm_text_end,
    }
    text = texts.get(change.to_state, "")
    if not text:
        return None
    labels = {
        Channel.AlarmState.ANNOUNCED: "Vorankündigung",
        Channel.AlarmState.ACTIVE: "Alarm",
        Channel.AlarmState.ALL_CLEAR: "Entwarnung",
    }
    broadcast = broadcast_create(
        author=actor,
        title=f"{channel.name}: {labels.get(change.to_state, change.to_state)}",
        variants={"de": text},
        channels=[channel],
        priority=Priority.ALERT,
    )
    Broadcast.objects.filter(pk=broadcast.pk).update(alarm_channel=channel)
    return broadcast
