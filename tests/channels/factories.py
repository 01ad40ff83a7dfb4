"""The one way tests make a channel: through `channels.services.channel_create`, as staff would,
so keywords and slugs are checked and the creation is audited like any other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from channels.models import Channel
from channels.services import channel_create
from messengers.models import Connection
from messengers.selectors import connection_sandbox


def make_channel(
    name: str = "Feinstaubalarm",
    keywords: Sequence[str] = ("FEINSTAUB",),
    *,
    connections: Sequence[Connection] | None = None,
    **fields: Any,
) -> Channel:
    """A channel on the given connections (the tenant's sandbox when none are given); any other
    editable channel field (is_alarm, default_priority, requires_approval, …) can be passed."""
    if connections is None:
        sandbox = connection_sandbox()
        assert sandbox is not None, "onboarding gives every tenant a sandbox connection"
        connections = [sandbox]
    return channel_create(name=name, keywords=list(keywords), connections=list(connections), **fields)
