"""Service errors: English in logs and tests (`message`), the user's language on pages
(`localized`), for every message a service of ours raises with a template (issue 10, item 6)."""

from __future__ import annotations

from django.utils import translation

from channels.services import KEYWORD_TAKEN
from core.errors import ApplicationError
from tenants.services import SCHEMA_INVALID


def test_message_is_english_and_localized_follows_the_active_language() -> None:
    error = ApplicationError(KEYWORD_TAKEN, params={"keyword": "SUD", "channel": "Bezirk Süd"})
    assert error.message == str(error) == "The keyword “SUD” is already used by the channel “Bezirk Süd”."
    with translation.override("de"):
        assert error.localized == "Das Stichwort „SUD“ verwendet bereits der Kanal „Bezirk Süd“."
    with translation.override("en"):
        assert error.localized == error.message


def test_messages_without_parameters_and_unknown_ones() -> None:
    with translation.override("de"):
        assert ApplicationError(SCHEMA_INVALID).localized.startswith("Der Kurzname muss")
        assert ApplicationError("Nobody translated this.").localized == "Nobody translated this."
