"""Reads for the tenant admin's start page: the "first steps" a new tenant's admin takes.

Each step is done when the data says so (a real messenger is connected, a channel exists,
someone subscribed through the subscribe page's form or widget), read through the owning
app's selectors; the list shows to admins until every step is done or they hide it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from accounts import roles
from accounts.models import User
from accounts.selectors import user_role_names
from channels.selectors import channel_exists
from messengers.selectors import connection_exists_outside_sandbox
from subscribers.selectors import subscription_exists_from_website
from tenants.selectors import tenant_absolute_url


@dataclass(frozen=True)
class FirstSteps:
    messenger_connected: bool
    channel_created: bool
    subscribe_page_used: bool
    subscribe_url: str

    @property
    def all_done(self) -> bool:
        return self.messenger_connected and self.channel_created and self.subscribe_page_used


def first_steps(*, user: User) -> FirstSteps | None:
    """The steps to show `user` on the start page, or None when there is nothing to show: not a
    tenant admin, list hidden, or every step done."""
    if not user.is_authenticated or user.first_steps_dismissed_at is not None:
        return None
    if roles.ADMIN not in user_role_names(user):
        return None
    steps = FirstSteps(
        messenger_connected=connection_exists_outside_sandbox(),
        channel_created=channel_exists(),
        subscribe_page_used=subscription_exists_from_website(),
        subscribe_url=tenant_absolute_url(reverse("subscribers:subscribe")),
    )
    return None if steps.all_done else steps
