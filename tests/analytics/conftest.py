"""Fixtures for the analytics tests: the four-eyes `team` (every role) of tests.broadcasts."""

from tests.broadcasts.four_eyes_support import team  # noqa: F401 - fixtures are found by name
