"""Room without a server: sync, relay and storage, authorship of client ids, limits, and what REST reads."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text

from codeconnect.collab import protocol as p
from codeconnect.collab.protocol import CloseCode
from codeconnect.collab.room import ProtocolViolation
from tests.collab.fakes import LIMITS, HandPeer, awareness_states, clock_of, gc_update, make_room


def refused(hand: HandPeer, data: bytes) -> CloseCode:
    with pytest.raises(ProtocolViolation) as exc:
        hand.room.receive(hand.peer, data)
    return exc.value.code


# --- sync, relay, storage ------------------------------------------------------------------------------------------


def test_join_sends_step1_the_document_then_the_presence_of_others() -> None:
    room, _ = make_room()
    ada = HandPeer(room, "ada").join()
    ada.announce({"cursor": None})
    bob = HandPeer(room, "bob")
    room.join(bob.peer)
    first, whole, third = bob.channel.take()
    assert p.parse_message(first) == p.Message(p.MessageType.SYNC, p.SyncType.STEP1, room.shared.doc.get_state())
    # The whole document, unasked: in sync without the round trip of its own request.
    greeting = p.parse_message(whole)
    assert (greeting.type, greeting.sync_type) == (p.MessageType.SYNC, p.SyncType.STEP2)
    doc = Doc()
    doc["code"] = code = Text()
    doc.apply_update(greeting.payload)
    assert str(code) == room.shared.text() != ""
    assert [cid for cid, _, _ in awareness_states([third])] == [ada.client_id]
    # Its own request, from where the greeting left it, is answered with next to nothing.
    room.receive(bob.peer, p.sync_step1(doc.get_state()))
    (answer,) = bob.channel.take()
    assert len(answer) < 8


def test_a_document_past_the_greeting_size_waits_for_the_peers_state_vector() -> None:
    room, _ = make_room(limits=dataclasses.replace(LIMITS, greeting_document_bytes=16))
    bob = HandPeer(room, "bob")
    room.join(bob.peer)
    (first,) = bob.channel.take()
    assert p.parse_message(first).sync_type == p.SyncType.STEP1


def test_an_update_is_applied_relayed_to_the_others_and_stored_once() -> None:
    room, log = make_room()
    ada, bob = HandPeer(room, "ada").join(), HandPeer(room, "bob").join()
    stored = len(log.updates)
    update = ada.edit("# ada\n")
    assert room.shared.text().endswith("# ada\n")
    assert log.updates[stored:] == [update]
    assert ada.channel.sent == [] and bob.channel.sent == [p.sync_update(update)]


def over_long(varint: bytes) -> bytes:
    """The same number in one byte more: its last byte continued by a zero."""
    return varint[:-1] + bytes([varint[-1] | 0x80, 0])


@pytest.mark.parametrize(
    "header",
    [b"\x80\x80\x80\x80\x80\x00\x02", b"\x00\x82\x00", b"\x00\x02"],
    ids=["over-long type", "over-long sync type", "over-long length"],
)
def test_an_update_framed_with_over_long_varints_is_relayed_as_y_protocols_frames_it(header: bytes) -> None:
    room, log = make_room()
    ada, bob = HandPeer(room, "ada").join(), HandPeer(room, "bob").join()
    before = ada.doc.get_state()
    ada.code += "# ada\n"
    update = ada.doc.get_update(before)
    length = p.var_uint_bytes(len(update))
    if header == b"\x00\x02":  # the length itself over-long: one byte more than it needs
        length = over_long(length)
    room.receive(ada.peer, header + length + update)
    assert room.shared.text().endswith("# ada\n") and log.updates[-1] == update
    assert bob.channel.sent == [p.sync_update(update)]


@pytest.mark.parametrize("size", [0x7F, 0x80, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000])
def test_frames_as_y_protocols_encodes_them_are_known_at_every_length_boundary(size: int) -> None:
    payload = bytes(size)
    assert p.encoded_as_sent(p.sync_update(payload), payload)
    longer = b"\x00\x02" + over_long(p.var_uint_bytes(size))
    assert p.parse_message(longer + payload).payload == payload
    assert not p.encoded_as_sent(longer + payload, payload)


def test_a_viewers_updates_are_dropped() -> None:
    room, log = make_room()
    viewer = HandPeer(room, "vic", readonly=True).join()
    stored = len(log.updates)
    viewer.edit("# nope\n")
    assert "nope" not in room.shared.text() and len(log.updates) == stored


def test_peers_with_the_same_state_vector_share_one_reply_until_the_document_changes() -> None:
    room, _ = make_room()
    a, b, c = (HandPeer(room, name) for name in ("a", "b", "c"))
    empty = p.sync_step1(Doc().get_state())
    room.receive(a.peer, empty)
    room.receive(b.peer, empty)
    assert a.channel.sent[-1] is b.channel.sent[-1]
    room.change(lambda shared: shared.replace_text("changed\n"))
    room.receive(c.peer, empty)
    assert c.channel.sent[-1] != a.channel.sent[-1]
    replica: Doc = Doc()
    replica.apply_update(p.parse_message(c.channel.sent[-1]).payload)
    assert str(replica.get("code", type=Text)) == "changed\n"


def test_leaving_tells_the_others_the_presence_is_gone() -> None:
    room, _ = make_room()
    ada, bob = HandPeer(room, "ada").join(), HandPeer(room, "bob").join()
    ada.announce({})
    bob.channel.take()
    ada.leave()
    assert awareness_states(bob.channel.take()) == [(ada.client_id, 2, None)]
    assert room.online_participants() == {"bob"}


# --- authorship of client ids --------------------------------------------------------------------------------------


def test_structs_under_another_participants_client_id_are_refused() -> None:
    room, log = make_room()
    ada, mallory = HandPeer(room, "ada").join(), HandPeer(room, "mallory").join()
    ada.edit("# ada\n")
    stored, text = len(log.updates), room.shared.text()
    forged = gc_update(ada.client_id, clock_of(room.shared.doc, ada.client_id), 10**6)
    for message in (p.sync_update(forged), p.sync_step2(forged)):
        assert refused(mallory, message) == CloseCode.BAD_MESSAGE
    assert (len(log.updates), room.shared.text()) == (stored, text)
    assert clock_of(room.shared.doc, ada.client_id) < 10**6


def test_presence_claims_the_client_id_before_any_edit() -> None:
    room, _ = make_room()
    ada, mallory = HandPeer(room, "ada").join(), HandPeer(room, "mallory").join()
    ada.announce({"cursor": None})
    assert refused(mallory, p.sync_update(gc_update(ada.client_id, 0, 10**6))) == CloseCode.BAD_MESSAGE
    ada.edit("# still mine\n")
    assert room.shared.text().endswith("# still mine\n")


def test_a_viewers_presence_claims_nothing() -> None:
    room, _ = make_room()
    viewer = HandPeer(room, "vic", readonly=True).join()
    viewer.announce({})
    editor = HandPeer(room, "ed", doc=viewer.doc).join()  # another participant writing under that id
    editor.edit("# fine\n")
    assert room.shared.text().endswith("# fine\n")


def test_duplicates_of_anothers_structs_are_harmless_and_accepted() -> None:
    room, _ = make_room()
    ada, bob = HandPeer(room, "ada").join(), HandPeer(room, "bob").join()
    update = ada.edit("# ada\n")
    bob.room.receive(bob.peer, p.sync_update(update))  # e.g. a step 2 racing the relay of the same edit
    bob.room.receive(bob.peer, p.sync_step2(room.shared.doc.get_update()))
    assert room.shared.text().count("# ada") == 1


def test_anyone_may_delete() -> None:
    room, _ = make_room()
    ada, bob = HandPeer(room, "ada").join(), HandPeer(room, "bob").join()
    ada.edit("# ada\n")
    bob.deliver()
    before = bob.doc.get_state()
    del bob.code[0 : len(bob.code)]
    bob.room.receive(bob.peer, p.sync_update(bob.doc.get_update(before)))
    assert room.shared.text() == ""


def test_connections_of_one_participant_share_its_client_ids() -> None:
    room, _ = make_room()
    tab1 = HandPeer(room, "ada").join()
    tab1.edit("# tab 1\n")
    tab1.leave()
    again = HandPeer(room, "ada", doc=tab1.doc).join()  # a reconnect, maybe before the old socket is gone
    again.edit("# again\n")
    assert room.shared.text().endswith("# tab 1\n# again\n")


def test_a_lone_new_client_id_in_a_step2_is_claimed_by_its_sender() -> None:
    room, _ = make_room()
    offline = Doc()
    offline.apply_update(room.shared.doc.get_update())
    offline.get("code", type=Text).insert(0, "# written offline\n")
    ada = HandPeer(room, "ada", doc=offline).join()  # its step 2 carries the offline edit
    assert room.shared.text().startswith("# written offline\n")
    mallory = HandPeer(room, "mallory").join()
    assert refused(mallory, p.sync_update(gc_update(ada.client_id, clock_of(offline, ada.client_id), 10))) == 4400


def test_a_step2_restoring_several_peoples_structs_claims_none_of_them() -> None:
    room, _ = make_room()
    stored = room.shared.doc.get_update()
    ada, bob = HandPeer(room, "ada").join(), HandPeer(room, "bob").join()
    ada.edit("# ada\n")
    bob.deliver()
    bob.edit("# bob\n")
    crashed, _ = make_room(stored)
    HandPeer(crashed, "bob", doc=bob.doc).join()
    ada_again = HandPeer(crashed, "ada", doc=ada.doc).join()
    ada_again.deliver()
    ada_again.edit("# ada again\n")
    assert crashed.shared.text().endswith("# ada again\n")


def test_client_ids_per_participant_are_bounded() -> None:
    limits = dataclasses.replace(LIMITS, max_client_ids_per_participant=2)
    room, _ = make_room(limits=limits)
    docs = []
    for i in range(3):  # three reloads of ada's page: three client ids
        hand = HandPeer(room, "ada").join()
        hand.edit(f"# {i}\n")
        docs.append(hand.doc)
        hand.leave()
    bob = HandPeer(room, "bob").join()
    # The oldest id was forgotten: it is nobody's now. The two recent ones are still ada's.
    bob.room.receive(bob.peer, p.sync_update(gc_update(docs[0].client_id, clock_of(docs[0], docs[0].client_id), 1)))
    assert refused(bob, p.sync_update(gc_update(docs[2].client_id, clock_of(docs[2], docs[2].client_id), 1))) == 4400


def test_the_state_vector_is_read_once_not_per_update(monkeypatch: pytest.MonkeyPatch) -> None:
    # An attacker adding a client id per update grows the state vector; parsing it per update was quadratic.
    parses = 0
    parse = p.parse_state_vector

    def counting(data: bytes) -> dict[int, int]:
        nonlocal parses
        if data != room.shared.doc.get_state():
            return parse(data)  # a peer's step 1, not the room's own state
        parses += 1
        return parse(data)

    room, _ = make_room()
    ada, bob = HandPeer(room, "ada").join(), HandPeer(room, "bob").join()
    # (Counted from here: a peer's step 1 can equal the room's state, once the greeting brought it all.)
    monkeypatch.setattr(p, "parse_state_vector", counting)
    dup = ada.edit("# ada\n")
    for i in range(50):
        fresh = Doc()
        fresh.apply_update(room.shared.doc.get_update())
        before = fresh.get_state()
        fresh.get("code", type=Text).insert(0, f"{i}")
        room.receive(bob.peer, p.sync_update(fresh.get_update(before)))
        room.receive(bob.peer, p.sync_update(dup))  # a duplicate of ada's: checked against the clocks
    assert parses <= 1
    assert refused(bob, p.sync_update(gc_update(ada.client_id, clock_of(room.shared.doc, ada.client_id), 5))) == 4400


def test_the_servers_client_id_is_nobody_elses() -> None:
    room, _ = make_room()
    room.change(lambda shared: shared.set_meta("title", "By REST"))
    server = int(room.shared.doc.client_id)
    mallory = HandPeer(room, "mallory").join()
    mallory.announce({}, client_id=server)  # presence under that id claims nothing for the document
    assert refused(mallory, p.sync_update(gc_update(server, clock_of(room.shared.doc, server), 5))) == 4400


# --- limits and malformed input ------------------------------------------------------------------------------------


def test_nul_in_the_code_is_refused() -> None:
    room, log = make_room()
    mallory = HandPeer(room, "mallory").join()
    stored = len(log.updates)
    mallory.code += "a\x00b"
    assert refused(mallory, p.sync_update(mallory.doc.get_update())) == CloseCode.BAD_MESSAGE
    assert "\x00" not in room.shared.text() and len(log.updates) == stored


def test_code_past_its_limit_is_refused() -> None:
    room, _ = make_room(limits=dataclasses.replace(LIMITS, max_code_bytes=64))
    ada = HandPeer(room, "ada").join()
    ada.code += "x" * 100
    assert refused(ada, p.sync_update(ada.doc.get_update())) == CloseCode.TOO_LARGE


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64))
def test_arbitrary_messages_are_handled_or_refused_with_4400(data: bytes) -> None:
    room, _ = make_room()
    hand = HandPeer(room, "fuzz").join()
    try:
        room.receive(hand.peer, data)
    except ProtocolViolation as exc:
        assert exc.code in (CloseCode.BAD_MESSAGE, CloseCode.TOO_LARGE)


# --- what REST reads -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["t" * 201, "a\x00b", "", 42, None])
def test_a_title_rest_would_refuse_is_ignored(bad: object) -> None:
    room, _ = make_room(title="Interview")
    ada = HandPeer(room, "ada").join()
    before = ada.doc.get_state()
    ada.meta["title"] = "t" * 200
    room.receive(ada.peer, p.sync_update(ada.doc.get_update(before)))
    assert room.title() == "t" * 200
    before = ada.doc.get_state()
    if bad is None:
        del ada.meta["title"]
    else:
        ada.meta["title"] = bad
    room.receive(ada.peer, p.sync_update(ada.doc.get_update(before)))
    assert room.title() == "t" * 200
    assert room.mirror().title == "t" * 200


def test_a_language_outside_the_table_is_ignored() -> None:
    room, _ = make_room(language="python")
    ada = HandPeer(room, "ada").join()
    for value, expected in (("JS", "javascript"), ("cobol", "javascript"), ("cpp", "cpp"), ("c\x00", "cpp")):
        before = ada.doc.get_state()
        ada.meta["language"] = value
        room.receive(ada.peer, p.sync_update(ada.doc.get_update(before)))
        assert room.language() == expected


def test_repeated_sync_requests_are_charged_to_the_peer_by_the_size_of_what_was_encoded() -> None:
    """A four-byte step 1 can make the room encode the whole document. Before: any number of them, free. Pass:
    a peer's first is free; later ones the room had to encode cost one message of its rate per
    ``sync_bytes_per_message`` of answer; an answer the room already had (the same state vector) costs nothing."""
    room, _ = make_room(limits=dataclasses.replace(LIMITS, sync_bytes_per_message=1024))
    writer = HandPeer(room, "ada").join()
    writer.edit("x" * 20_000)
    writer_charged = writer.channel.charged  # its update's own size (below)
    asker = HandPeer(room, "eve").join()
    assert asker.channel.charged == 0  # its first sync
    asker.channel.take()
    other_vector = b"\x01\x05\x00"  # client 5 at clock 0: the whole document again, encoded anew
    room.receive(asker.peer, p.sync_step1(other_vector))
    [reply] = asker.channel.take()
    cost = (len(reply) + len(other_vector)) / 1024
    assert asker.channel.charged == pytest.approx(cost) and asker.channel.charged > 19
    room.receive(asker.peer, p.sync_step1(other_vector))  # the same question: the kept answer, free
    assert asker.channel.charged == pytest.approx(cost)
    assert writer.channel.charged == writer_charged


def test_updates_are_charged_to_the_sender_by_their_size() -> None:
    """Applying an update costs in proportion to its size. Before: a 2 MiB update cost one message of the rate,
    like a keystroke. Pass: it costs one more message per ``update_bytes_per_message``; a keystroke, almost
    nothing."""
    room, _ = make_room(limits=dataclasses.replace(LIMITS, update_bytes_per_message=1024))
    writer = HandPeer(room, "ada").join()
    writer.edit("x")
    small = writer.channel.charged
    assert small < 0.1
    writer.edit("y" * 50_000)
    assert writer.channel.charged - small > 48
    # A connection's first sync answer (its whole state, maybe a document edited offline) is free; a second is not.
    other = Doc()
    other.get("code", type=Text).insert(0, "z" * 50_000)
    late = HandPeer(room, "bob").join()
    room.receive(late.peer, p.sync_step2(other.get_update()))
    assert late.channel.charged == 0
    room.receive(late.peer, p.sync_step2(other.get_update()))
    assert late.channel.charged > 48


def test_what_rest_reads_is_kept_until_the_document_changes_whichever_way_it_changes() -> None:
    """``read_view`` is kept between reads; a peer's update, the server's own change, an update another process
    accepted and stored updates merged in each show in the next read."""
    room, _ = make_room(language="python", title="Interview")
    ada = HandPeer(room, "ada").join()
    first = room.read_view()
    assert room.read_view() is first and first[1:] == ("python", "Interview")

    before = ada.doc.get_state()
    ada.meta["language"] = "java"
    ada.meta["title"] = "Round 2"
    room.receive(ada.peer, p.sync_update(ada.doc.get_update(before)))
    assert room.read_view()[1:] == ("java", "Round 2")

    room.change(lambda shared: shared.replace_text("by the server\n"))
    assert room.read_view()[0] == "by the server\n"

    other = Doc()
    other.apply_update(room.shared.doc.get_update())
    updates: list[bytes] = []
    other.observe(lambda event: updates.append(event.update))
    other.get("code", type=Text).insert(0, "remote ")
    room.apply_remote(updates[-1], "bob", (other.client_id,))
    assert room.read_view()[0] == "remote by the server\n"

    other.get("code", type=Text).insert(0, "stored ")
    room.merge_stored([updates[-1]])
    assert room.read_view()[0] == "stored remote by the server\n" == room.shared.text()


# --- what other processes accepted ---------------------------------------------------------------------------------


def test_a_remote_update_is_relayed_never_stored_and_counted_once_when_replayed() -> None:
    # A loading room replays the stream's recent entries on top of the log, and a reconnect reads the stream
    # again: entries the document holds already must not count again towards its size limit.
    room, log = make_room()
    bob = HandPeer(room, "bob").join()
    other = Doc()
    other["code"] = text = Text()
    updates: list[bytes] = []
    other.observe(lambda event: updates.append(event.update))
    text += "# from another process\n"
    (update,) = updates
    stored, size = len(log.updates), room.doc_bytes
    room.apply_remote(update, "ada", (other.client_id,))
    assert room.shared.text().count("# from another process\n") == 1
    assert bob.channel.take() == [p.sync_update(update)]
    assert len(log.updates) == stored and not room.dirty
    assert room.doc_bytes == size + len(update)
    for _ in range(3):
        room.apply_remote(update, "ada", (other.client_id,))
    assert room.doc_bytes == size + len(update)
    assert room.shared.text().count("# from another process\n") == 1


def test_an_ended_room_drops_every_peers_updates_and_says_so() -> None:
    room, log = make_room()
    ada, bob = HandPeer(room, "ada").join(), HandPeer(room, "bob").join()
    ended = p.auth_message(p.AuthType.PERMISSION_DENIED, p.SESSION_ENDED)
    assert room.set_ended(datetime.now(UTC)) is True
    assert ada.channel.take() == [ended] and bob.channel.take() == [ended]
    assert room.set_ended(datetime.now(UTC)) is False and ada.channel.sent == []  # already ended: nothing said
    stored = len(log.updates)
    ada.edit("# nope\n")
    bob.room.receive(bob.peer, p.sync_step2(bob.doc.get_update()))  # a step 2 is an update too
    assert "nope" not in room.shared.text() and len(log.updates) == stored and bob.channel.sent == []
    late = HandPeer(room, "cy")
    room.join(late.peer)
    assert late.channel.sent[-1] == ended  # told after its sync
    assert room.set_ended(None) is True
    assert bob.channel.take() == [p.auth_message(p.AuthType.PERMISSION_GRANTED, p.SESSION_REOPENED)]
    update = bob.edit("# yes\n")
    assert log.updates[-1] == update


def test_expel_closes_every_connection_of_the_participant_with_4403() -> None:
    room, _ = make_room()
    ada, ada2, bob = HandPeer(room, "ada").join(), HandPeer(room, "ada").join(), HandPeer(room, "bob").join()
    assert room.expel("ada", "removed") == 2
    assert ada.channel.closed == ada2.channel.closed == (CloseCode.FORBIDDEN, "removed")
    assert bob.channel.closed is None
