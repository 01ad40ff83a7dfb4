"""Parsing of keyword commands (pure: no database, never raises).

    parse_command("Start Feinstaub!")        -> Command("start", ("FEINSTAUB",))
    parse_command("alle daten loschen")      -> Command("erase", ())
    parse_command("Wann kommt der Bus?")     -> None   (goes on to the inbox)

Case, accents and punctuation do not matter (channels.keywords.normalise). A command word must
come first; commands that take no arguments only match when nothing follows (STATUS: at most
one word, the channel), so a question that happens to start with "Status" or "Hilfe" reaches a
person in the inbox instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from channels.keywords import COMMAND_WORDS, ENGLISH_WORDS, ERASE_PHRASES, match_key, normalise

NO_ARGUMENTS: Final = frozenset({"help", "settings"})
# STATUS takes one word (a channel keyword is one word); more words are a question for a person.
MAX_ARGUMENTS: Final = {"start": 2, "language": 1, "district": 4, "stop": 8, "status": 1}
# Longer texts are messages for a person, not commands.
MAX_COMMAND_LENGTH: Final = 200

_COMMANDS_BY_KEY: Final = {match_key(word): name for word, name in COMMAND_WORDS.items()}
_ENGLISH_KEYS: Final = frozenset(match_key(word) for word in ENGLISH_WORDS)
_ERASE_KEYS: Final = {match_key(phrase): phrase for phrase in ERASE_PHRASES}


@dataclass(frozen=True)
class Command:
    name: str  # start, stop, help, status, language, district, settings, erase
    args: tuple[str, ...] = ()  # normalised words after the command word
    english: bool = False  # the command word was English (reply language hint for new people)


def parse_command(text: str) -> Command | None:
    if not isinstance(text, str) or len(text) > MAX_COMMAND_LENGTH:
        return None
    words = normalise(text).split()
    if not words:
        return None
    whole = match_key(" ".join(words))
    if whole in _ERASE_KEYS:
        return Command("erase", (), english=_ERASE_KEYS[whole].startswith("DELETE"))
    first = match_key(words[0])
    name = _COMMANDS_BY_KEY.get(first)
    if name is None:
        return None
    args = tuple(words[1:])
    if name in NO_ARGUMENTS and args:
        return None
    if len(args) > MAX_ARGUMENTS.get(name, 0):
        return None
    return Command(name, args, english=first in _ENGLISH_KEYS)


def render_command(command: Command) -> str:
    """A text that parses back to `command` (used by reply buttons and tests)."""
    if command.name == "erase":
        return "DELETE MY DATA" if command.english else "ALLE DATEN LÖSCHEN"
    words = [word for word, name in COMMAND_WORDS.items() if name == command.name]
    english = [w for w in words if w in ENGLISH_WORDS]
    german = [w for w in words if w not in ENGLISH_WORDS]
    word = (english or german)[0] if command.english else (german or english)[0]
    return " ".join([word, *command.args])
