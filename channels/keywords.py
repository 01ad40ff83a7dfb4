"""The keyword language shared by channel keywords and the subscribers' commands.

People type on every kind of keyboard: "Feinstaub", "FEINSTAUB!", "feinstaub.", "Löschen",
"loeschen" and "loschen" must all mean the same. Two functions give that:

* `normalise(text)` is the stored and displayed form: upper case, German umlauts and ß
  transliterated (Ö → OE, ß → SS), other accents dropped (É → E), every run of anything that is
  not A-Z or 0-9 turned into one space. Channel.keywords holds this form.
* `match_key(text)` is what two texts are compared by: the normalised form with the umlaut
  digraphs folded (OE → O), so "LÖSCHEN", "LOESCHEN" and "LOSCHEN" meet.

Both are pure, never raise and are idempotent. The command vocabulary lives here too, so a
channel keyword can never shadow a command.
"""

from __future__ import annotations

import re
import unicodedata

_TRANSLITERATE = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "AE", "Ö": "OE", "Ü": "UE", "ß": "ss", "ẞ": "SS"})
_WORD = re.compile(r"[A-Z0-9]+")
_DIGRAPH = re.compile(r"AE|OE|UE")

# Command words (normalised). Each maps to the command it starts.
COMMAND_WORDS: dict[str, str] = {
    "START": "start",
    "ANMELDEN": "start",
    "SUBSCRIBE": "start",
    "STOP": "stop",
    "STOPP": "stop",
    "ABMELDEN": "stop",
    "ABBESTELLEN": "stop",
    "UNSUBSCRIBE": "stop",
    "HILFE": "help",
    "HELP": "help",
    "STATUS": "status",
    "SPRACHE": "language",
    "LANGUAGE": "language",
    "BEZIRK": "district",
    "STADTBEZIRK": "district",
    "DISTRICT": "district",
    "EINSTELLUNGEN": "settings",
    "SETTINGS": "settings",
}
# Whole messages that ask for erasure (normalised).
ERASE_PHRASES = ("ALLE DATEN LOESCHEN", "DATEN LOESCHEN", "DELETE MY DATA", "DELETE ALL MY DATA", "DELETE DATA")
# Words that show the person wrote in English (a hint for the reply language of new people).
ENGLISH_WORDS = frozenset({"SUBSCRIBE", "UNSUBSCRIBE", "HELP", "LANGUAGE", "DISTRICT", "SETTINGS", "DELETE"})


def normalise(text: str) -> str:
    """Upper case, transliterated, accent-free words of A-Z/0-9 separated by single spaces."""
    composed = unicodedata.normalize("NFC", text).translate(_TRANSLITERATE)
    decomposed = unicodedata.normalize("NFKD", composed)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()
    return " ".join(_WORD.findall(plain))


def match_key(text: str) -> str:
    """The comparison form: normalised, with AE/OE/UE folded to A/O/U (repeated until stable)."""
    key = normalise(text)
    while True:
        folded = _DIGRAPH.sub(lambda m: m.group(0)[0], key)
        if folded == key:
            return key
        key = folded


RESERVED_KEYS = frozenset(match_key(word) for word in COMMAND_WORDS) | frozenset(
    match_key(word) for phrase in ERASE_PHRASES for word in phrase.split()
)
