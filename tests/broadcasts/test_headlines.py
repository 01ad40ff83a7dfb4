"""The public headline: the team's subject, else the text's first line without its links."""

from __future__ import annotations

from broadcasts.headlines import HEADLINE_MAX_CHARS, headline


def test_the_subject_wins_and_is_tidied() -> None:
    assert headline(subject="  Neckarstraße \n wieder frei ", body="Die Sperrung endet.") == "Neckarstraße wieder frei"


def test_else_the_first_line_that_says_something_without_links() -> None:
    body = "\n  https://stadt.example/a\nFeinstaubalarm: https://stadt.example/f ab Montag\nZweite Zeile"
    assert headline(subject="", body=body) == "Feinstaubalarm: ab Montag"
    assert headline(subject="", body="Particulate alarm: https://x.example/") == "Particulate alarm"
    assert headline(subject="", body="https://x.example/only") == "https://x.example/only"
    assert headline(subject="", body="") == ""


def test_long_first_lines_are_cut() -> None:
    result = headline(subject="", body="Wort " * 100)
    assert len(result) <= HEADLINE_MAX_CHARS and result.endswith("…")
