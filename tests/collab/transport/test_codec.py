"""The frame codec alone: every length form, split anywhere, refused early, never copied per read."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeconnect.collab.transport.codec import (
    Frame,
    FrameError,
    FrameParser,
    Opcode,
    close_payload,
    frame_header,
    parse_close,
    unmask,
)


def client_frame(payload: bytes, *, opcode: int = 2, fin: bool = True, masked: bool = True, rsv: int = 0) -> bytes:
    first = (0x80 if fin else 0) | rsv | opcode
    bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head = bytes((first, bit | n))
    elif n < 65536:
        head = bytes((first, bit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, bit | 127)) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + unmask(payload, key)


def frames_of(parser: FrameParser) -> list[Frame]:
    out = []
    while (frame := parser.next_frame()) is not None:
        out.append(frame)
    return out


@given(st.lists(st.binary(max_size=70_000), min_size=1, max_size=4), st.integers(min_value=1, max_value=5000))
def test_frames_of_every_length_form_survive_any_split(payloads: list[bytes], step: int) -> None:
    stream = b"".join(client_frame(p) for p in payloads)
    parser = FrameParser(max_payload=1 << 20)
    got: list[bytes] = []
    for i in range(0, len(stream), step):
        parser.feed(stream[i : i + step])
        got += [f.payload for f in frames_of(parser)]
    assert got == payloads
    assert parser.buffered == 0


def test_unmask_is_its_own_inverse_and_matches_the_rfc_example() -> None:
    # RFC 6455 5.7: "Hello" masked with 37 fa 21 3d.
    key = bytes.fromhex("37fa213d")
    assert unmask(b"Hello", key) == bytes.fromhex("7f9f4d5158")
    assert unmask(unmask(b"x" * 1001, key), key) == b"x" * 1001


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (client_frame(b"x", masked=False), 1002),
        (client_frame(b"x", rsv=0x40), 1002),
        (client_frame(b"x", opcode=3), 1002),
        (client_frame(b"p" * 126, opcode=9), 1002),  # a control frame longer than 125
        (client_frame(b"p", opcode=9, fin=False), 1002),  # a fragmented control frame
    ],
    ids=["unmasked", "rsv-bit", "unknown-opcode", "long-control", "fragmented-control"],
)
def test_broken_frames_are_refused(frame: bytes, code: int) -> None:
    parser = FrameParser(max_payload=1024)
    parser.feed(frame)
    with pytest.raises(FrameError) as exc:
        parser.next_frame()
    assert exc.value.code == code


def test_an_oversized_frame_is_refused_from_its_header_alone() -> None:
    parser = FrameParser(max_payload=1024)
    parser.feed(client_frame(b"z" * 4096)[:10])  # the header and a few bytes: nothing more is needed
    with pytest.raises(FrameError) as exc:
        parser.next_frame()
    assert exc.value.code == 1009


def test_a_frame_in_small_pieces_is_whole_only_at_its_last_byte() -> None:
    # The buffer grows in place (appends, no copy of everything so far per piece) until the frame is whole.
    data = client_frame(b"q" * 200_000)
    parser = FrameParser(max_payload=1 << 20)
    for i in range(0, len(data) - 1, 1024):
        parser.feed(data[i : min(i + 1024, len(data) - 1)])
        assert parser.next_frame() is None
    assert parser.buffered == len(data) - 1
    parser.feed(data[-1:])
    frame = parser.next_frame()
    assert frame is not None and frame.payload == b"q" * 200_000
    assert parser.buffered == 0


def test_server_headers_and_close_bodies() -> None:
    assert frame_header(Opcode.BINARY, 5) == b"\x82\x05"
    assert frame_header(Opcode.BINARY, 300) == b"\x82\x7e\x01\x2c"
    assert frame_header(Opcode.BINARY, 70_000) == b"\x82\x7f" + (70_000).to_bytes(8, "big")
    body = close_payload(4400, "é" * 200)
    assert len(body) <= 125 and body[:2] == (4400).to_bytes(2, "big")
    body[2:].decode("utf-8")  # cut on a character boundary
    assert parse_close(body)[0] == 4400
    assert parse_close(b"") == (1005, "")
    with pytest.raises(FrameError):
        parse_close(b"\x03")
    with pytest.raises(FrameError):
        parse_close((999).to_bytes(2, "big"))
