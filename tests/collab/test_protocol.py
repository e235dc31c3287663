"""Decoding of client messages and updates: the fast paths taken by keystrokes agree with the full decoders."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map, Text

from codeconnect.collab import protocol as p
from codeconnect.collab.protocol import MAX_SAFE_INTEGER, MalformedMessage, MessageType, SyncType
from codeconnect.collab.updates import inspect_update

SYNC_KINDS = st.sampled_from([SyncType.STEP1, SyncType.STEP2, SyncType.UPDATE])


def _sync(kind: SyncType, payload: bytes) -> bytes:
    return p._message(bytes([0, kind]), payload)


# Payload lengths around the one- and two-byte length prefixes the fast path reads, and past them.
@settings(max_examples=300, deadline=None)
@given(
    kind=SYNC_KINDS,
    size=st.sampled_from([0, 1, 127, 128, 129, 16383, 16384, 16385, 70000]),
    fill=st.binary(max_size=8),
)
def test_sync_messages_decode_at_every_length_prefix(kind: SyncType, size: int, fill: bytes) -> None:
    payload = (fill or b"x") * (size // max(1, len(fill)) + 1)
    payload = payload[:size]
    data = _sync(kind, payload)
    msg = p.parse_message(data)
    assert (msg.type, msg.sync_type, msg.payload) == (MessageType.SYNC, kind, payload)
    with pytest.raises(MalformedMessage):
        p.parse_message(data[:-1])  # truncated
    with pytest.raises(MalformedMessage):
        p.parse_message(data + b"\x00")  # trailing bytes


@settings(max_examples=2000, deadline=None)
@given(data=st.binary(max_size=12))
def test_arbitrary_bytes_decode_or_are_refused(data: bytes) -> None:
    try:
        msg = p.parse_message(data)
    except MalformedMessage:
        return
    if msg.type == MessageType.SYNC:
        assert msg.sync_type is not None
        # A decoded sync message re-encodes to exactly the bytes it came from (minimal length prefixes).
        if p.var_uint_bytes(len(msg.payload)) == data[2 : len(data) - len(msg.payload)]:
            assert _sync(msg.sync_type, msg.payload) == data


def _typing_updates(texts: list[str]) -> tuple[list[bytes], int, str]:
    doc: Doc = Doc()
    code = doc.get("code", type=Text)
    doc.get("meta", type=Map)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    inserted = 0
    for i, text in enumerate(texts):
        current = str(code)
        # Yrs indexes UTF-8 bytes: insert at a character boundary.
        code.insert(len(current[: (i * 7) % (len(current) + 1)].encode()), text)
        inserted += len(text.encode())
    return updates, inserted, str(code)


@settings(max_examples=60, deadline=None)
# NUL is left out: string content holding it is refused (tests/collab/test_updates.py); lone surrogates cannot be
# typed into a document at all (they have no UTF-8 form).
@given(texts=st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=6),
                      min_size=1, max_size=30))
def test_inspected_updates_count_the_utf8_bytes_they_insert(texts: list[str]) -> None:
    updates, inserted, text = _typing_updates(texts)
    assert sum(inspect_update(u).string_bytes for u in updates) == inserted
    replica: Doc = Doc()
    for u in updates:
        assert not inspect_update(u).is_empty
        replica.apply_update(u)
    assert str(replica.get("code", type=Text)) == text


def _with_client_id(client: int) -> bytes:
    """One string insert by ``client``: one client block of one struct (client, clock 0, info = string content
    without origins, parent = root type "code", the string "hi"), then an empty delete set."""
    return b"\x01\x01" + p.var_uint_bytes(client) + b"\x00" + b"\x04" + b"\x01\x04code" + b"\x02hi" + b"\x00"


@pytest.mark.parametrize(
    ("client", "ok"),
    [
        (0, True),
        (127, True),
        (128, True),
        (2**49 - 1, True),
        (2**49, True),
        (MAX_SAFE_INTEGER, True),
        (MAX_SAFE_INTEGER + 1, False),
        (2**56, False),
        (2**63, False),
    ],
)
def test_client_ids_beyond_javascript_integers_are_refused(client: int, ok: bool) -> None:
    data = _with_client_id(client)
    if ok:
        info = inspect_update(data)
        assert (info.structs, info.string_bytes) == (1, 2)
        Doc().apply_update(data)  # and Yrs agrees it is an update
    else:
        with pytest.raises(MalformedMessage):
            inspect_update(data)


def test_truncated_client_ids_are_refused() -> None:
    data = _with_client_id(MAX_SAFE_INTEGER)
    for cut in range(2, 11):
        with pytest.raises(MalformedMessage):
            inspect_update(data[:cut])
