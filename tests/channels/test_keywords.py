"""Property tests for keyword normalisation (channels.keywords): never raises, idempotent,
insensitive to case, accents and punctuation."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from channels.keywords import COMMAND_WORDS, RESERVED_KEYS, match_key, normalise

NORMAL_FORM = re.compile(r"^([A-Z0-9]+( [A-Z0-9]+)*)?$")
# What people actually type: German letters, accents, digits, punctuation, spaces.
TYPED = st.text(alphabet="abcdefghijklmnopqrstuvwxyzäöüßéèêàçñ0123456789 .,;:!?-_/'\"()", max_size=60)
WORD = st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True)
PUNCTUATION = st.text(alphabet=" .,;:!?-_/'\"()\t\n*#", min_size=1, max_size=4)


@given(st.text(max_size=200))
def test_normalise_never_raises_and_yields_upper_case_words(text: str) -> None:
    result = normalise(text)
    assert NORMAL_FORM.match(result), result
    assert NORMAL_FORM.match(match_key(text))


@given(st.text(max_size=200))
def test_normalise_and_match_key_are_idempotent(text: str) -> None:
    assert normalise(normalise(text)) == normalise(text)
    assert match_key(match_key(text)) == match_key(text)
    assert match_key(normalise(text)) == match_key(text)


@given(TYPED)
def test_case_does_not_matter(text: str) -> None:
    assert normalise(text.upper()) == normalise(text.lower()) == normalise(text)


@given(st.lists(WORD, min_size=1, max_size=5), st.lists(PUNCTUATION, min_size=6, max_size=6))
def test_punctuation_between_and_around_words_does_not_matter(words: list[str], marks: list[str]) -> None:
    plain = " ".join(words)
    decorated = marks[0] + "".join(word + marks[i % 5 + 1] for i, word in enumerate(words))
    assert normalise(decorated) == normalise(plain) == plain.upper()


@given(st.sampled_from(list(COMMAND_WORDS)))
def test_every_command_word_is_reserved(word: str) -> None:
    assert match_key(word) in RESERVED_KEYS


def test_umlauts_accents_and_sharp_s_fold_together() -> None:
    assert normalise("Löschen") == "LOESCHEN"
    assert normalise("Straße") == normalise("STRASSE") == "STRASSE"
    assert normalise("Café-Süd!") == "CAFE SUED"
    assert match_key("LÖSCHEN") == match_key("loeschen") == match_key("loschen")
    assert match_key("Süd") == match_key("SUED") == match_key("sud")
    assert normalise("ẞ") == "SS"


def test_distinct_words_stay_distinct() -> None:
    assert match_key("FEINSTAUB") != match_key("VERKEHR")
    assert match_key("U1") != match_key("U2")
