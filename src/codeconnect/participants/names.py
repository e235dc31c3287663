"""Participant names: what a name may be, and how a repeated name is told apart.

A name is all the people list and the live cursors show of someone, so a name that only looks like another is
a way to pass for them. Refused: control characters (line breaks, terminal escapes), unpaired surrogates (no
database or response can encode them), the characters that reorder text on screen (a right-to-left override
makes ``"\\u202eadA"`` show as ``Ada``, and flips whatever the page shows after it), and names with nothing
visible in them. A name already in the session gets the first free number: ``Ada``, ``Ada (2)``, ``Ada (3)``.
"""

from __future__ import annotations

import array
import itertools
import re
import sys
import unicodedata
from collections.abc import Collection
from functools import cache

# Overrides, embeddings and isolates (with their POP), and the implicit direction marks: each changes the
# order in which the characters around it are drawn.
_DIRECTION_CONTROLS = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)] + [chr(c) for c in range(0x2066, 0x206A)] + ["\u200e", "\u200f", "\u061c"]
)
# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt; `unicodedata` does not expose it): drawn as
# nothing unless a font has a reason to. Most are Cf, but not the Hangul fillers (letters, the classic "empty"
# name), the combining grapheme joiner and the variation selectors (marks).
_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip
# Blank yet not ignorable: drawn as an empty cell of the width of a letter.
_BLANK = frozenset("\u2800")  # BRAILLE PATTERN BLANK


class InvalidName(ValueError):
    """A name that cannot be shown faithfully; the message says why, for the person who typed it."""


def normalize_name(raw: str) -> str:
    """``raw`` in NFC without surrounding whitespace, or :class:`InvalidName`."""
    name = unicodedata.normalize("NFC", raw).strip()
    visible = False
    for char in name:
        category = unicodedata.category(char)
        if category == "Cc":
            raise InvalidName("Names cannot contain control characters such as line breaks or tabs.")
        if category == "Cs":
            raise InvalidName("Names cannot contain unpaired surrogates.")
        if char in _DIRECTION_CONTROLS:
            raise InvalidName(f"Names cannot contain U+{ord(char):04X}, which changes the direction text is shown in.")
        # Marks draw nothing without a letter to sit on; spaces and ignorables draw nothing at all.
        if not visible and category[0] not in "ZM" and not char.isspace() and not _ignorable(char, category):
            visible = char not in _BLANK
    if not visible:
        raise InvalidName("Names need at least one visible character.")
    return name


def _escape(code: int) -> str:
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _all_code_points() -> str:
    """U+0000 to U+10FFFF, surrogates included, as one string: decoded in one call (a chr() each takes 0.15 s)."""
    codes = array.array("I", range(0x110000))
    if codes.itemsize != 4:
        return "".join(map(chr, range(0x110000)))
    return codes.tobytes().decode(f"utf-32-{'le' if sys.byteorder == 'little' else 'be'}", "surrogatepass")


# Categories drawn as nothing (separators, marks, format characters) or refused (controls, surrogates).
_NOTHING_OR_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Cf", "Zs", "Zl", "Zp", "Mn", "Mc", "Me"})


@cache
def name_pattern() -> str:
    """The rules above as a regular expression for the API schema, so that clients (and schema-driven tests)
    know which names are refused: no control or direction character anywhere, and at least one character that
    is drawn. Built from the same rules as :func:`normalize_name` (about 300 ranges; computed once)."""
    # Every process computes this at start, over all 1.1 million code points: by category in bulk, then the few
    # characters the categories miss, then the runs found by a regular expression. (One Python call per code
    # point took 1.8 s of every start.)
    chars = _all_code_points()
    categories = list(map(unicodedata.category, chars))
    flag = {category: int(category in _NOTHING_OR_REFUSED_CATEGORIES) for category in set(categories)}
    flags = bytearray(map(flag.__getitem__, categories))
    for char in itertools.chain(_DIRECTION_CONTROLS, _BLANK):
        flags[ord(char)] = 1
    for low, high in _IGNORABLE_RANGES:
        flags[low : high + 1] = b"\x01" * (high + 1 - low)
    for space in re.finditer(r"\s", chars):  # the same characters as str.isspace
        flags[space.start()] = 1
    # Surrogates are not characters: the validator refuses them, and no regex engine here can name them.
    flags[0xD800:0xE000] = bytes(0xE000 - 0xD800)
    ranges = [(m.start(), m.end() - 1) for m in re.finditer(b"\x01+", flags)]
    invisible = "".join(_escape(lo) if lo == hi else f"{_escape(lo)}-{_escape(hi)}" for lo, hi in ranges)
    refused = "\\x00-\\x1f\\x7f-\\x9f" + "".join(_escape(ord(c)) for c in sorted(_DIRECTION_CONTROLS))
    return f"^[^{refused}]*[^{invisible}][^{refused}]*$"


def _ignorable(char: str, category: str) -> bool:
    if category == "Cf":
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _IGNORABLE_RANGES)


def name_key(name: str) -> str:
    """What two names are compared by, so that names which look the same compare equal: NFKC with case folding
    (``ADA``, fullwidth ``Ａda`` and ``ada`` are one name), without the characters drawn as nothing
    (``Ad<zero-width space>a`` is ``Ada``), and with any run of spaces as one (a page shows them as one)."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    kept = "".join(" " if c in _BLANK else c for c in folded if not _ignorable(c, unicodedata.category(c)))
    return " ".join(kept.split())


def distinct_name(name: str, taken: Collection[str], max_length: int) -> str | None:
    """``name`` if no key in ``taken`` (see :func:`name_key`) matches it, else ``name (n)`` with the first free
    ``n`` >= 2, trimmed first so the result stays within ``max_length``; None when the limit leaves no room
    for the name and a number."""
    if name_key(name) not in taken:
        return name
    # At most len(taken) numbers are taken, and each candidate differs from the others by its number.
    for n in range(2, len(taken) + 3):
        suffix = f" ({n})"
        stem = name[: max_length - len(suffix)].rstrip() if max_length > len(suffix) else ""
        if not stem:
            return None
        candidate = stem + suffix
        if name_key(candidate) not in taken:
            return candidate
    return None  # unreachable: see the loop's bound
