"""Property tests for keyword command parsing (subscribers.commands)."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from channels.keywords import RESERVED_KEYS, match_key, normalise
from subscribers.commands import MAX_ARGUMENTS, NO_ARGUMENTS, Command, parse_command, render_command

NAMES = ["start", "stop", "help", "status", "language", "district", "settings", "erase"]
ARG = st.from_regex(r"[A-Z][A-Z0-9]{0,9}", fullmatch=True).filter(lambda w: match_key(w) not in RESERVED_KEYS)
DECORATION = st.sampled_from(["", "!", ".", "?", " ", "  ", "\n", "/", "*"])


@st.composite
def commands(draw: st.DrawFn) -> Command:
    name = draw(st.sampled_from(NAMES))
    if name in NO_ARGUMENTS or name == "erase":
        args: tuple[str, ...] = ()
    else:
        args = tuple(draw(st.lists(ARG, min_size=0, max_size=MAX_ARGUMENTS[name])))
    english_possible = name not in ("status",)
    english = draw(st.booleans()) if english_possible else False
    return Command(name, args, english=english)


@given(st.text(max_size=300))
def test_parse_never_raises_and_only_returns_known_commands(text: str) -> None:
    command = parse_command(text)
    if command is not None:
        assert command.name in NAMES
        assert all(arg == arg.upper() and arg.isalnum() and arg.isascii() for arg in command.args)


@given(commands())
def test_rendered_commands_parse_back(command: Command) -> None:
    assert parse_command(render_command(command)) == command


@given(commands(), DECORATION, DECORATION, st.booleans())
def test_case_and_punctuation_do_not_change_the_command(command: Command, before: str, after: str, lower: bool) -> None:
    text = render_command(command)
    variant = before + (text.lower() if lower else text) + after
    assert parse_command(variant) == command


@given(st.sampled_from(["HILFE", "EINSTELLUNGEN"]), st.lists(ARG, min_size=1, max_size=5))
def test_no_argument_commands_followed_by_words_are_left_for_a_person(word: str, rest: list[str]) -> None:
    assume(rest)
    assert parse_command(" ".join([word, *rest])) is None


@given(st.lists(ARG, min_size=2, max_size=6))
def test_status_followed_by_several_words_is_left_for_a_person(rest: list[str]) -> None:
    assert parse_command(" ".join(["STATUS", *rest])) is None


ACCENTED = st.from_regex(r"[A-Za-zÄÖÜäöüßÉéÈèÀàÇç][A-Za-z0-9ÄÖÜäöüßÉéÈèÀàÇç]{0,9}", fullmatch=True)


@given(ACCENTED, DECORATION, DECORATION, st.sampled_from(["STATUS", "status", "Status", "sTaTuS"]))
def test_status_with_one_word_asks_about_that_channel(word: str, before: str, after: str, status: str) -> None:
    assume(match_key(word) not in RESERVED_KEYS and len(normalise(word).split()) == 1)
    command = parse_command(f"{before}{status} {word}{after}")
    assert command == Command("status", (normalise(word),))
    # the handler compares by match_key, so spellings of one word ask about the same channel
    assert match_key(command.args[0]) == match_key(word)


def test_examples_people_write() -> None:
    assert parse_command("Start Feinstaub!") == Command("start", ("FEINSTAUB",))
    assert parse_command("anmelden verkehr") == Command("start", ("VERKEHR",))
    assert parse_command("stopp") == Command("stop", ())
    assert parse_command("Abmelden: Feinstaub") == Command("stop", ("FEINSTAUB",))
    assert parse_command("help") == Command("help", (), english=True)
    assert parse_command("Sprache en") == Command("language", ("EN",))
    assert parse_command("Bezirk Bad Cannstatt") == Command("district", ("BAD", "CANNSTATT"))
    assert parse_command("Alle Daten löschen!") == Command("erase", ())
    assert parse_command("alle daten loschen") == Command("erase", ())
    assert parse_command("Delete my data") == Command("erase", (), english=True)
    assert parse_command("EINSTELLUNGEN") == Command("settings", ())
    assert parse_command("/start") == Command("start", ())
    assert parse_command("STATUS FEINSTAUB") == Command("status", ("FEINSTAUB",))
    assert parse_command("Status: Feinstäub?") == Command("status", ("FEINSTAEUB",))
    assert parse_command("status") == Command("status", ())


def test_questions_and_long_texts_go_to_the_inbox() -> None:
    assert parse_command("Wann kommt der Bus?") is None
    assert parse_command("Status der U3 bitte?") is None
    assert parse_command("Hilfe, der Aufzug ist kaputt") is None
    assert parse_command("") is None
    assert parse_command("!!!") is None
    assert parse_command("START " + "X " * 200) is None


def test_every_reply_exists_in_german_and_english_with_the_same_placeholders() -> None:
    from string import Formatter

    from subscribers.texts import TEXTS

    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in Formatter().parse(text) if name}

    assert set(TEXTS["de"]) == set(TEXTS["en"])
    assert {key: fields(text) for key, text in TEXTS["de"].items()} == {
        key: fields(text) for key, text in TEXTS["en"].items()
    }
