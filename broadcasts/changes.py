"""Telling the apps above (analytics) that a broadcast's figures changed: the hooks of
settings.BROADCAST_CHANGE_HOOKS and BROADCAST_FINISHED_HOOKS. Broadcasts knows nothing of what
they do with it; they run in the caller's transaction."""

from __future__ import annotations

from collections.abc import Collection

from django.conf import settings
from django.utils.module_loading import import_string


def broadcasts_changed(*, broadcast_ids: Collection[int] = (), delivery_ids: Collection[int] = ()) -> None:
    """Statuses merged into these deliveries, or a click on a link of these broadcasts."""
    if not broadcast_ids and not delivery_ids:
        return
    for path in settings.BROADCAST_CHANGE_HOOKS:
        import_string(path)(broadcast_ids=broadcast_ids, delivery_ids=delivery_ids)


def broadcast_finished(*, broadcast_id: int) -> None:
    """The broadcast finished sending or was cancelled."""
    for path in settings.BROADCAST_FINISHED_HOOKS:
        import_string(path)(broadcast_id=broadcast_id)
