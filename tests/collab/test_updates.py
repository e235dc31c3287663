"""inspect_update without a server: the client blocks it reports, and content it refuses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text

from codeconnect.collab import protocol as p
from codeconnect.collab.protocol import MalformedMessage
from codeconnect.collab.updates import inspect_update
from tests.collab.fakes import gc_update


def _blocks_by_state(before: dict[int, int], after: dict[int, int]) -> set[tuple[int, int, int]]:
    return {(client, before.get(client, 0), end) for client, end in after.items() if end > before.get(client, 0)}


@settings(max_examples=80, deadline=None)
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from(["text", "map", "array"]),
            # NUL is refused (see below); a lone surrogate is not text (pycrdt cannot encode it).
            st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=5),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_blocks_are_each_clients_range_of_clocks(edits: list[tuple[str, str, str]]) -> None:
    docs = {name: Doc() for name in "abc"}
    server: Doc = Doc()
    for name, kind, value in edits:
        doc = docs[name]
        doc.apply_update(server.get_update(doc.get_state()))
        before = p.parse_state_vector(server.get_state())
        if kind == "text":
            doc.get("code", type=Text).insert(0, value or "x")
        elif kind == "map":
            doc.get("meta", type=Map)["title"] = value
        else:
            doc.get("runs", type=Array).append({"v": value})
        update = doc.get_update(server.get_state())
        info = inspect_update(update)
        server.apply_update(update)
        after = p.parse_state_vector(server.get_state())
        assert set(info.blocks) == _blocks_by_state(before, after)
    # A whole document: one block per client from clock 0.
    whole = inspect_update(server.get_update())
    assert set(whole.blocks) == {(c, 0, end) for c, end in p.parse_state_vector(server.get_state()).items()}


def test_a_gc_struct_is_a_block_of_its_length() -> None:
    assert inspect_update(gc_update(42, 7, 1_000_000)).blocks == ((42, 7, 1_000_007),)


def test_a_delete_only_update_has_no_blocks() -> None:
    doc: Doc = Doc()
    text = doc.get("code", type=Text)
    text += "hello"
    before = doc.get_state()
    del text[0:2]
    info = inspect_update(doc.get_update(before))
    assert info.blocks == () and info.deletes == 1


@pytest.mark.parametrize("text", ["\x00", "a\x00", "\x00b", "héllo\x00wörld"])
def test_nul_in_string_content_is_refused(text: str) -> None:
    doc: Doc = Doc()
    doc.get("code", type=Text).insert(0, text)
    with pytest.raises(MalformedMessage, match="NUL"):
        inspect_update(doc.get_update())


def test_nul_elsewhere_is_left_to_whoever_reads_it() -> None:
    # Map values are not code: REST's rules decide whether they are used (see Room.title).
    doc: Doc = Doc()
    doc.get("meta", type=Map)["title"] = "a\x00b"
    assert inspect_update(doc.get_update()).structs == 1
