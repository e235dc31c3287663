"""RoomAwareness without a server: who may speak for which client id, and which states are relayed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeconnect.collab.awareness import (
    LIVE_OUTPUT_MAX_BYTES,
    LIVE_OUTPUT_MAX_OFFSET,
    LIVE_OUTPUT_MAX_PIECES,
    RoomAwareness,
    encode_entries,
)
from codeconnect.collab.protocol import MAX_SAFE_INTEGER, MalformedMessage, Reader

USER = {"name": "Ada", "color": "#d1495b", "participantId": "p-ada"}
STAMPED = {**USER, "colorLight": "#d1495b33"}


class Conn:
    def __init__(self, user: dict[str, str] = USER, readonly: bool = False) -> None:
        self.client_id: int | None = None
        self.readonly = readonly
        self._user = user

    @property
    def user(self) -> dict[str, str]:
        return self._user


def update(client: int, clock: int, state: Any) -> bytes:
    raw = state if isinstance(state, bytes) else json.dumps(state).encode()
    return encode_entries([(client, clock, raw)])


def decode(payload: bytes | None) -> list[tuple[int, int, Any]]:
    assert payload is not None
    r = Reader(payload)
    return [(r.var_uint(), r.var_uint(), json.loads(r.var_string())) for _ in range(r.var_uint())]


def relayed(state: Any) -> Any:
    """The state the room relays when a fresh connection announces ``state``."""
    [(_, _, out)] = decode(RoomAwareness(16 << 10).apply(Conn(), update(7, 1, state)))
    return out


def pos(**fields: Any) -> dict[str, Any]:
    return {"type": None, "tname": None, "item": None, "assoc": 0, **fields}


def test_a_connection_speaks_for_the_first_client_id_nobody_holds() -> None:
    room = RoomAwareness(1024)
    a, b = Conn(), Conn({**USER, "participantId": "p-bob"})
    assert decode(room.apply(a, update(1, 1, {})))[0][0] == 1
    assert a.client_id == 1
    assert room.apply(b, update(1, 2, None)) is None  # someone else's id: ignored, not an error
    assert room.apply(a, update(2, 1, {})) is None  # a second id of the same connection: ignored
    assert decode(room.apply(b, update(3, 1, {})))[0][0] == 3
    assert len(room) == 2
    assert decode(room.remove(a)) == [(1, 2, None)]
    assert room.remove(a) is None


def test_clocks_order_states_and_null_means_gone() -> None:
    room, a = RoomAwareness(1024), Conn()
    assert room.apply(a, update(1, 5, {})) is not None
    assert room.apply(a, update(1, 5, {"cursor": None})) is None  # not newer
    assert room.apply(a, update(1, 4, None)) is None
    assert decode(room.apply(a, update(1, 6, None))) == [(1, 6, None)]
    assert room.snapshot() is None


def test_user_is_always_the_servers() -> None:
    assert relayed({"user": {"name": "Mallory", "color": "red; x", "colorLight": "url(x)", "avatar": "x"}}) == {
        "user": STAMPED
    }
    assert relayed({}) == {"user": STAMPED}
    assert relayed({"user": "Mallory"}) == {"user": STAMPED}


def test_cursors_as_y_codemirror_writes_them_pass_unchanged() -> None:
    cursor = {
        "anchor": pos(item={"client": 3_000_000_000, "clock": 12}),
        "head": pos(tname="code", assoc=-1),
    }
    assert relayed({"cursor": cursor}) == {"user": STAMPED, "cursor": cursor}
    nested = {"anchor": pos(type={"client": 1, "clock": 2}), "head": pos(type={"client": 1, "clock": 2})}
    assert relayed({"cursor": nested})["cursor"] == nested
    assert relayed({"cursor": None}) == {"user": STAMPED, "cursor": None}


def test_short_relative_positions_are_relayed_in_full() -> None:
    # y-protocols' relativePositionToJSON leaves absent keys out; y-codemirror.next reads the object as it comes,
    # and a missing `item` is not null to it.
    short = {"anchor": {"item": {"client": 1, "clock": 2}}, "head": {"tname": "code", "assoc": 1}}
    assert relayed({"cursor": short})["cursor"] == {
        "anchor": pos(item={"client": 1, "clock": 2}),
        "head": pos(tname="code", assoc=1),
    }


def test_unknown_fields_are_dropped() -> None:
    assert relayed({"cursor": None, "selection": {"x": 1}, "status": "typing"}) == {"user": STAMPED, "cursor": None}


@pytest.mark.parametrize(
    "state",
    [
        {"cursor": {"anchor": {}, "head": {}}},
        {"cursor": {"anchor": pos(), "head": pos(tname="code")}},  # nothing to resolve: the binding throws
        {"cursor": {"anchor": pos(item={"client": 1}), "head": pos(tname="code")}},
        {"cursor": {"anchor": pos(item={"client": 1, "clock": -1}), "head": pos(tname="code")}},
        {"cursor": {"anchor": pos(item={"client": MAX_SAFE_INTEGER + 1, "clock": 0}), "head": pos(tname="code")}},
        {"cursor": {"anchor": pos(item={"client": True, "clock": 0}), "head": pos(tname="code")}},
        {"cursor": {"anchor": pos(item={"client": 1, "clock": 0, "x": 1}), "head": pos(tname="code")}},
        {"cursor": {"anchor": pos(item=[1, 0]), "head": pos(tname="code")}},
        {"cursor": {"anchor": pos(tname="nope"), "head": pos(tname="code")}},
        {"cursor": {"anchor": pos(tname=7), "head": pos(tname="code")}},
        {"cursor": {"anchor": pos(tname="code", assoc="1"), "head": pos(tname="code")}},
        {"cursor": {"anchor": pos(tname="code", assoc=0.5), "head": pos(tname="code")}},
        {"cursor": {"anchor": pos(tname="code", extra=1), "head": pos(tname="code")}},
        {"cursor": {"anchor": pos(tname="code")}},
        {"cursor": {"anchor": pos(tname="code"), "head": pos(tname="code"), "x": 1}},
        {"cursor": {"anchor": pos(tname="code"), "head": None}},
        {"cursor": 1},
        {"cursor": "here"},
        5,
        "state",
        [],
        True,
    ],
)
def test_malformed_states_are_refused(state: Any) -> None:
    with pytest.raises(MalformedMessage):
        RoomAwareness(1024).apply(Conn(), update(1, 1, state))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"x":"\\ud800"}',  # a lone surrogate, escaped
        b'{"x":"\\udc00"}',
        b'{"cursor":{"anchor":{"tname":"\\ud800"},"head":null}}',
        b'{"x":"\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 bytes (not valid UTF-8)
        b'{"x": 1',
        b"\xff",
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_states_that_are_not_valid_json_text_are_refused(raw: bytes) -> None:
    with pytest.raises(MalformedMessage):
        RoomAwareness(1 << 20).apply(Conn(), update(1, 1, raw))


def test_a_valid_surrogate_pair_is_fine() -> None:
    assert relayed(b'{"x":"\\ud83d\\ude00","cursor":null}') == {"user": STAMPED, "cursor": None}


def test_oversized_states_are_refused() -> None:
    with pytest.raises(MalformedMessage):
        RoomAwareness(64).apply(Conn(), update(1, 1, {"pad": "x" * 100}))


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
_position = st.fixed_dictionaries(
    {},
    optional={
        "type": st.none() | st.fixed_dictionaries({"client": st.integers(-2, 2**54), "clock": st.integers(-2, 9)}),
        "tname": st.none() | st.sampled_from(["code", "meta", "runs", "", "x", "\ud800"]),
        "item": st.none() | st.fixed_dictionaries({"client": st.integers(-2, 2**54), "clock": st.integers(-2, 9)}),
        "assoc": st.none() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.text(max_size=2),
    },
)
_state = st.fixed_dictionaries(
    {},
    optional={
        "user": _json,
        "cursor": st.none() | _json | st.fixed_dictionaries({"anchor": _position, "head": _position}),
        "other": _json,
    },
)


@settings(max_examples=150, deadline=None)
@given(state=_state | _json)
def test_any_state_is_relayed_in_a_shape_the_editor_binding_can_read_or_refused(state: Any) -> None:
    if state is None:  # "went away": nothing to relay for a client that was never there
        return
    try:
        out = relayed(json.dumps(state).encode())
    except MalformedMessage:
        return
    assert isinstance(out, dict) and set(out) <= {"user", "cursor"} and out["user"] == STAMPED
    cursor = out.get("cursor")
    if cursor is None:
        return
    assert set(cursor) == {"anchor", "head"}
    for position in cursor.values():
        assert set(position) == {"type", "tname", "item", "assoc"}
        assert isinstance(position["assoc"], int) and not isinstance(position["assoc"], bool)
        assert position["item"] is not None or position["tname"] is not None or position["type"] is not None
        for key in ("type", "item"):
            if position[key] is not None:
                assert set(position[key]) == {"client", "clock"}
                assert all(0 <= v <= MAX_SAFE_INTEGER for v in position[key].values())
        assert position["tname"] in (None, "code", "meta", "runs")


def test_a_reconnect_of_the_same_participant_takes_its_client_id_over() -> None:
    # A browser that reconnects while its old socket is still open keeps its client id: the new connection
    # takes the entry over, and the old one's end must not tell everyone the person left.
    room = RoomAwareness(1024)
    old, new, other = Conn(), Conn(), Conn({**USER, "participantId": "p-bob"})
    room.apply(old, update(1, 1, {}))
    assert room.apply(other, update(1, 2, {})) is None  # another participant may not
    assert decode(room.apply(new, update(1, 2, {})))[0][:2] == (1, 2)
    assert new.client_id == 1
    assert room.remove(old) is None
    assert decode(room.remove(new)) == [(1, 3, None)]


# --- the live output of a run in progress (``run``) ---------------------------------------------------------------

RUN = {
    "id": "0123456789abcdef0123456789abcdef",
    "language": "python",
    "startedAt": "2026-01-02T03:04:05.678Z",
    "phase": "running",
    "offset": 12,
    "output": [["stdout", "line 1\n"], ["stderr", "oops\n"]],
}


def test_a_viewers_live_run_is_dropped() -> None:
    [(_, _, out)] = decode(RoomAwareness(16 << 10).apply(Conn(readonly=True), update(7, 1, {"run": RUN})))
    assert out == {"user": STAMPED}
    with pytest.raises(MalformedMessage):  # still checked: a malformed one closes its sender like anyone's
        RoomAwareness(16 << 10).apply(Conn(readonly=True), update(7, 1, {"run": {**RUN, "phase": "x"}}))


def test_a_live_run_of_valid_shape_is_relayed() -> None:
    assert relayed({"cursor": None, "run": RUN}) == {"user": STAMPED, "cursor": None, "run": RUN}
    assert relayed({"run": None}) == {"user": STAMPED, "run": None}
    full = {**RUN, "output": [["stdout", "é" * (LIVE_OUTPUT_MAX_BYTES // 2)]]}
    assert relayed(json.dumps({"run": full}, ensure_ascii=False).encode())["run"] == full
    many = {**RUN, "output": [["stdout" if i % 2 else "stderr", "x"] for i in range(LIVE_OUTPUT_MAX_PIECES)]}
    assert relayed({"run": many})["run"] == many


@pytest.mark.parametrize(
    "run",
    [
        {**RUN, "output": [["stdout", "x" * (LIVE_OUTPUT_MAX_BYTES + 1)]]},
        {**RUN, "output": [["stdout", "é" * (LIVE_OUTPUT_MAX_BYTES // 2 + 1)]]},  # counted in UTF-8 bytes
        {**RUN, "output": [["stdout", "x" * 5000], ["stderr", "x" * 5000]]},  # the total, not each piece
        {**RUN, "output": [["stdout", "x"]] * (LIVE_OUTPUT_MAX_PIECES + 1)},
        {**RUN, "output": [["stdin", "x"]]},
        {**RUN, "output": [["stdout", 1]]},
        {**RUN, "output": [["stdout", "x", "y"]]},
        {**RUN, "output": [{"stream": "stdout", "text": "x"}]},
        {**RUN, "output": "x"},
        {**RUN, "offset": -1},
        {**RUN, "offset": 1.5},
        {**RUN, "offset": True},
        {**RUN, "offset": LIVE_OUTPUT_MAX_OFFSET + 1},
        {**RUN, "id": "short"},
        {**RUN, "id": "x" * 65},
        {**RUN, "id": "<img src=x onerror=alert(1)>abcdef"},
        {**RUN, "id": 12345678901234567},
        {**RUN, "language": "cobol"},
        {**RUN, "language": None},
        {**RUN, "startedAt": "yesterday"},
        {**RUN, "startedAt": "2026-01-02T03:04:05Z" + "x" * 100},
        {**RUN, "phase": "Hacked by Mallory"},
        {**RUN, "extra": 1},
        {k: v for k, v in RUN.items() if k != "output"},
        [],
        "running",
        1,
    ],
)
def test_a_malformed_or_oversized_live_run_is_refused(run: Any) -> None:
    with pytest.raises(MalformedMessage):
        RoomAwareness(1 << 20).apply(Conn(), update(1, 1, {"run": run}))
