"""Fixtures for the broadcast tests: the four-eyes `team` (see tests.broadcasts.four_eyes_support)."""

from tests.broadcasts.four_eyes_support import team  # noqa: F401 - fixtures are found by name
