"""Participant names: the API schema's pattern says exactly what the validator accepts."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeconnect.participants.names import (
    _BLANK,
    _DIRECTION_CONTROLS,
    InvalidName,
    _ignorable,
    name_pattern,
    normalize_name,
)


def drawn_as_nothing_or_refused(char: str) -> bool:
    """The rule, a character at a time, as normalize_name applies it."""
    category = unicodedata.category(char)
    return (
        category in ("Cc", "Cs")
        or char in _DIRECTION_CONTROLS
        or category[0] in "ZM"
        or char.isspace()
        or _ignorable(char, category)
        or char in _BLANK
    )


def test_the_patterns_invisible_characters_are_those_of_the_rule_for_every_code_point() -> None:
    pattern = name_pattern()
    invisible = re.compile("[" + pattern[pattern.index("]*[^") + 4 : pattern.rindex("][^")] + "]")
    # No name can hold a surrogate (JSON and the database refuse them), and the pattern leaves them out.
    codes = [code for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF]
    chars = "".join(map(chr, codes))
    expected = {code for code in codes if drawn_as_nothing_or_refused(chr(code))}
    assert {ord(m.group()) for m in invisible.finditer(chars)} == expected


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("Ada", True),
        ("  Ada  ", True),
        ("\u2800", False),  # braille blank
        ("\u3164", False),  # Hangul filler
        ("a\u200bb", True),
        ("\u200b", False),
        ("\u202eadA", False),
        ("Ada\nLovelace", False),
        ("\u0301", False),  # a mark with nothing to sit on
        ("e\u0301", True),
        ("\U000e0041", False),  # a tag character
        ("日本", True),
    ],
)
def test_the_pattern_and_the_validator_agree(name: str, accepted: bool) -> None:
    assert validator_accepts(name) == accepted
    assert pattern_accepts(name.strip()) == accepted


@given(st.text(max_size=12))
def test_the_pattern_and_the_validator_agree_on_any_text(name: str) -> None:
    # The schema sees what the client sends; the validator first takes NFC and strips the ends, which the pattern
    # cannot: compare them on names that those steps leave alone.
    if unicodedata.normalize("NFC", name).strip() == name:
        assert pattern_accepts(name) == validator_accepts(name)


def validator_accepts(name: str) -> bool:
    try:
        normalize_name(name)
    except InvalidName:
        return False
    return True


def pattern_accepts(name: str) -> bool:
    return re.fullmatch(name_pattern(), name) is not None
