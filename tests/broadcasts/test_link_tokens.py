"""Tracked-link tokens (/l/<token>): the parser accepts exactly the tokens link_token made for the
schema and answers None, never an exception, for any other text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broadcasts.links import BIGINT_MAX, link_token, link_token_parse

ids = st.integers(min_value=0, max_value=BIGINT_MAX)


@given(link_id=ids, delivery_id=ids)
@settings(max_examples=300, deadline=None)
def test_tokens_round_trip(link_id: int, delivery_id: int) -> None:
    assert link_token_parse("test_a", link_token("test_a", link_id, delivery_id)) == (link_id, delivery_id)
    assert link_token_parse("test_b", link_token("test_a", link_id, delivery_id)) is None


@given(text=st.text(max_size=300) | st.text(alphabet="0123456789abcdef-_", min_size=1, max_size=6000))
@settings(max_examples=500, deadline=None)
def test_any_text_is_refused_without_an_exception(text: str) -> None:
    assert link_token_parse("test_a", text) is None


@given(link_id=ids, delivery_id=ids, position=st.integers(min_value=0), replacement=st.characters())
@settings(max_examples=300, deadline=None)
def test_a_changed_character_is_refused(link_id: int, delivery_id: int, position: int, replacement: str) -> None:
    token = link_token("test_a", link_id, delivery_id)
    index = position % len(token)
    forged = token[:index] + replacement + token[index + 1 :]
    if forged != token:
        assert link_token_parse("test_a", forged) is None


def test_over_long_and_out_of_range_ids_are_refused() -> None:
    signature = link_token("test_a", 1, 1).rsplit("-", 1)[1]
    for token in (
        f"{'f' * 5000}-1-{signature}",
        f"1-{'1' * 5000}-{signature}",
        f"{BIGINT_MAX + 1:x}-1-{signature}",
        f"١-1-{signature}",
        f"1-1-{signature}\n",
    ):
        assert link_token_parse("test_a", token) is None
