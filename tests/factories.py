"""Shared factories. Objects with invariants are created through services (Zulip's habit)."""

from __future__ import annotations

import factory

from accounts import roles
from accounts.models import User
from accounts.services import user_create

PASSWORD = "correct-horse-battery"


def make_user(role: str = roles.EDITOR, *, username: str | None = None, password: str = PASSWORD) -> User:
    """A staff user of the current schema with one role, created through the service."""
    name = username or factory.Faker("user_name").evaluate(None, None, {"locale": None})
    suffix = User.objects.count() + 1
    username = f"{name}{suffix}" if username is None else username
    return user_create(username=username, email=f"{username}@example.org", role_names=[role], password=password)
