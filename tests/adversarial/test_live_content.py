"""Attacks through the content of live messages: what an editor can write into the document and into presence.

- Writing under someone else's Yjs client id (a GC struct a million clocks long) silently muted them: their next
  edits stayed in their own editor, were never stored and never reached anyone. Such an update is refused (4400)
  without being applied, stored or relayed; the legitimate cases (a reconnecting client restoring structs a crash
  lost, late offline edits) still go through.
- A presence state with ``cursor: {anchor: {}, head: {}}`` was relayed and crashed the remote-cursor plugin of
  every other browser; a lone surrogate in a state closed its sender with 1011 and logged an error. Only known
  fields of valid shape are relayed; malformed senders are closed with 4400.
- A 1.5 MB ``meta.title`` written through Yjs was returned by REST (whose limit is 200 characters); NUL typed into
  the code reached the database's text column. Values written through Yjs obey the REST rules (a value that
  breaks them is ignored, REST keeps the last valid one) and NUL in code is refused at the edge (4400).
- Serving a large document to new peers encoded and copied it once per peer (a 28 MiB document x 40 peers). Peers
  with the same state vector share one encoded reply.

Each test states its pass threshold.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Text

from codeconnect.collab import protocol as p
from codeconnect.collab.document import SharedDoc
from codeconnect.collab.room import ProtocolViolation
from tests.collab.fakes import LIMITS, HandPeer, awareness_states, clock_of, gc_update, make_room
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import LiveServer, fresh_sqlite, servers_on

WAIT = 10.0  # seconds any expected event may take; the tests fail past it


@pytest.fixture
async def live(sqlite_url: str) -> AsyncIterator[tuple[LiveServer, httpx.AsyncClient]]:
    """A real server on SQLite (what is tested does not depend on the database) and an HTTP client."""
    await fresh_sqlite(sqlite_url)
    async with servers_on(sqlite_url) as factory:
        server = await factory()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            yield server, client


async def _connect(server: LiveServer, client: httpx.AsyncClient, sid: str, name: str) -> YClient:
    token = (await join(client, sid, name))["token"]
    return await YClient(collab_url(server.ws_url, sid, token)).connect()


async def _close_code(c: YClient, timeout: float = WAIT) -> int | None:
    """The code the server closed ``c`` with, or None if it was still open after ``timeout`` seconds."""
    try:
        return await c.wait_closed(timeout)
    except TimeoutError:
        return None


async def _rest_until(client: httpx.AsyncClient, sid: str, predicate: Any) -> dict[str, Any]:
    """Poll the session until ``predicate(body)`` holds (at most WAIT seconds); return the body."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        body: dict[str, Any] = (await client.get(f"/v1/sessions/{sid}")).json()
        if predicate(body) or loop.time() > deadline:
            return body
        await asyncio.sleep(0.02)


# --- A: client ids belong to the participant that first wrote under them ------------------------------------------


@pytest.mark.parametrize("via", ["update", "step2"])
@pytest.mark.parametrize("victim_known_by", ["edits", "presence"])
async def test_an_editor_cannot_mute_another_by_writing_under_their_client_id(
    live: tuple[LiveServer, httpx.AsyncClient], via: str, victim_known_by: str
) -> None:
    """Threshold: the attacker is closed with 4400; the victim's next edit reaches a third client and REST within
    WAIT seconds; the third client never receives the attacker's struct."""
    server, client = live
    sid = (await new_session(client))["id"]
    victim = await _connect(server, client, sid, "Victim")
    witness = await _connect(server, client, sid, "Witness")
    attacker = await _connect(server, client, sid, "Mallory")
    if victim_known_by == "edits":
        victim.code += "# victim 1\n"
        await witness.wait_for(lambda: "# victim 1" in witness.text)
    else:  # the victim only announced its presence: its client id is public, it has not typed yet
        await victim.set_awareness({"user": {"name": "Victim"}})
        await attacker.wait_for(lambda: victim.doc.client_id in attacker.awareness)
    target = victim.doc.client_id
    forged = gc_update(target, clock_of(victim.doc, target), 1_000_000)
    await attacker.send(p.sync_update(forged) if via == "update" else p.sync_step2(forged))
    victim.code += "# victim 2\n"
    await witness.wait_for(lambda: "# victim 2" in witness.text, timeout=WAIT)  # before: TimeoutError (muted)
    body = await _rest_until(client, sid, lambda b: "# victim 2" in b["code"])
    assert "# victim 2" in body["code"]
    assert await _close_code(attacker) == 4400
    assert clock_of(witness.doc, target) < 1_000_000
    for c in (victim, witness, attacker):
        await c.close()


async def test_a_reconnecting_client_restores_what_a_crash_lost_including_other_peoples_edits() -> None:
    """Threshold: after a "crash" (a new room from the last stored state, so nobody owns any client id), the first
    client to reconnect restores its own and another participant's lost edits; that other participant then
    reconnects, edits, and everyone converges on every edit exactly once."""
    room, _ = make_room()
    stored = room.shared.doc.get_update()
    ada = HandPeer(room, "ada").join()
    bob = HandPeer(room, "bob").join()
    ada.edit("# ada, lost\n")
    bob.deliver()
    bob.edit("# bob, lost\n")
    ada.deliver()
    assert ada.text == bob.text
    # The crash: the edits above never reached storage.
    crashed, _ = make_room(stored)
    bob_again = HandPeer(crashed, "bob", doc=bob.doc).join()  # its step 2 carries Ada's structs too
    assert "# ada, lost" in crashed.shared.text() and "# bob, lost" in crashed.shared.text()
    ada_again = HandPeer(crashed, "ada", doc=ada.doc).join()
    ada_again.announce({"user": {}})
    ada_again.edit("# ada, after\n")
    bob_again.edit("# bob, after\n")
    for hand in (ada_again, bob_again):
        hand.deliver()
    final = crashed.shared.text()
    assert ada_again.text == bob_again.text == final
    for marker in ("# ada, lost", "# bob, lost", "# ada, after", "# bob, after"):
        assert final.count(marker) == 1


async def test_the_servers_own_client_id_is_the_servers() -> None:
    """Threshold: a struct under the server's client id (REST writes, run output) is refused and not applied."""
    room, log = make_room()
    room.change(lambda shared: shared.replace_text("print(2)\n"))
    server_id = int(room.shared.doc.client_id)
    mallory = HandPeer(room, "mallory").join()
    stored = len(log.updates)
    with pytest.raises(ProtocolViolation) as refused:
        room.receive(mallory.peer, p.sync_update(gc_update(server_id, clock_of(room.shared.doc, server_id), 10**6)))
    assert refused.value.code == 4400
    assert clock_of(room.shared.doc, server_id) < 10**6 and len(log.updates) == stored


# --- B: presence carries known fields of valid shape only --------------------------------------------------------


def _states_of(c: YClient, client_id: int) -> list[Any]:
    return [state for cid, _clock, state in awareness_states(c.received) if cid == client_id and state is not None]


@pytest.mark.parametrize(
    "state",
    [
        {"cursor": {"anchor": {}, "head": {}}},  # crashed y-codemirror.next in every other browser
        {"cursor": {"anchor": {"type": None, "tname": None, "item": None, "assoc": 0}, "head": {"tname": "code"}}},
        {"cursor": {"anchor": {"item": {"client": -1, "clock": 0}}, "head": {"item": {"client": 1, "clock": 0}}}},
        {"cursor": {"anchor": {"item": {"client": 1, "clock": 1.5}}, "head": {"item": {"client": 1, "clock": 0}}}},
        {"cursor": {"anchor": {"tname": "x" * 10_000}, "head": {"tname": "code"}}},
        {"cursor": 1},
        5,
        ["user"],
        "state",
    ],
    ids=["empty-positions", "all-null", "negative-client", "float-clock", "long-tname", "number-cursor", "int",
         "list", "string"],
)
async def test_malformed_presence_closes_its_sender_and_reaches_nobody(
    live: tuple[LiveServer, httpx.AsyncClient], state: Any
) -> None:
    """Threshold: the sender is closed with 4400; the witness, which meanwhile receives a valid state, never
    receives the malformed one."""
    server, client = live
    sid = (await new_session(client))["id"]
    witness = await _connect(server, client, sid, "Witness")
    good = await _connect(server, client, sid, "Good")
    mallory = await _connect(server, client, sid, "Mallory")
    await mallory.set_awareness(state)
    assert await _close_code(mallory) == 4400  # before: None (still open) and the state relayed
    await good.set_awareness({"user": {"name": "Good"}, "cursor": None})
    await witness.wait_for(lambda: good.doc.client_id in witness.awareness)
    assert _states_of(witness, mallory.doc.client_id) == []
    for c in (witness, good, mallory):
        await c.close()


async def test_a_lone_surrogate_in_presence_is_a_4400_not_a_server_error(
    live: tuple[LiveServer, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    """Threshold: closed with 4400 (before: 1011), nothing logged at ERROR, the room keeps working."""
    server, client = live
    sid = (await new_session(client))["id"]
    witness = await _connect(server, client, sid, "Witness")
    mallory = await _connect(server, client, sid, "Mallory")
    with caplog.at_level(logging.ERROR):
        # json.dumps writes the lone surrogate as the escape "\ud800", as a hostile client would.
        await mallory.set_awareness({"user": {"name": "Mallory"}, "status": "\ud800"})
        assert await _close_code(mallory) == 4400
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert _states_of(witness, mallory.doc.client_id) == []
    await witness.set_awareness({"user": {"name": "Witness"}})
    await witness.wait_for(lambda: witness.doc.client_id in witness.awareness)
    await witness.close()
    await mallory.close()


async def test_presence_relays_known_fields_only(live: tuple[LiveServer, httpx.AsyncClient]) -> None:
    """Threshold: a state shaped as y-codemirror.next writes it arrives with its cursor intact and the server's
    ``user``; unknown fields (top level and inside ``user``) are dropped; ``relativePositionToJSON``'s short form
    arrives in the full form y-codemirror.next reads (absent keys as null, assoc 0)."""
    server, client = live
    sid = (await new_session(client))["id"]
    witness = await _connect(server, client, sid, "Witness")
    ada = await _connect(server, client, sid, "Ada")
    cursor = {
        "anchor": {"type": None, "tname": None, "item": {"client": 12345, "clock": 7}, "assoc": 0},
        "head": {"type": None, "tname": "code", "item": None, "assoc": -1},
    }
    await ada.set_awareness(
        {"user": {"name": "Ada", "color": "#ff0000", "avatar": "javascript:alert(1)"}, "cursor": cursor, "x": 1}
    )
    await witness.wait_for(lambda: ada.doc.client_id in witness.awareness)
    state = witness.awareness[ada.doc.client_id]
    assert set(state) == {"user", "cursor"} and state["cursor"] == cursor
    assert set(state["user"]) == {"name", "color", "colorLight", "participantId"}
    await ada.set_awareness({"cursor": {"anchor": {"item": {"client": 1, "clock": 2}}, "head": {"tname": "code"}}})
    await witness.wait_for(lambda: witness.awareness[ada.doc.client_id]["cursor"]["anchor"]["item"]["client"] == 1)
    assert witness.awareness[ada.doc.client_id]["cursor"] == {
        "anchor": {"type": None, "tname": None, "item": {"client": 1, "clock": 2}, "assoc": 0},
        "head": {"type": None, "tname": "code", "item": None, "assoc": 0},
    }
    await ada.set_awareness({"user": {"name": "Ada"}, "cursor": None})
    await witness.wait_for(lambda: witness.awareness[ada.doc.client_id].get("cursor", 0) is None)
    await witness.close()
    await ada.close()


# --- C: the REST rules hold for values written through Yjs -------------------------------------------------------


async def test_title_and_language_written_through_yjs_obey_the_rest_rules(
    live: tuple[LiveServer, httpx.AsyncClient],
) -> None:
    """Threshold: a title REST would refuse (1.5 MB; one character over the limit; with NUL; empty; not a string)
    or a language outside the table, written through Yjs, is ignored: REST keeps returning the last valid value. A
    valid one (exactly the limit) is taken."""
    server, client = live
    limit = server.settings.max_title_length
    sid = (await new_session(client, title="Interview", language="python"))["id"]
    ada = await _connect(server, client, sid, "Ada")

    async def write(n: int, **meta: Any) -> dict[str, Any]:
        marker = f"# write {n}\n"
        with ada.doc.transaction():  # one update: when REST shows the marker, it has seen the meta too
            for key, value in meta.items():
                ada.meta[key] = value
            ada.code.insert(0, marker)
        return await _rest_until(client, sid, lambda b: marker in b["code"])

    body = await write(1, title="x" * 1_500_000, language="cobol")
    assert (len(body["title"]), body["language"]) == (len("Interview"), "python")  # before: 1500000
    assert body["title"] == "Interview"
    ok = "t" * limit
    assert (await write(2, title=ok, language="cpp"))["title"] == ok
    for n, bad in enumerate(["t" * (limit + 1), "a\x00b", "", 42], start=3):
        body = await write(n, title=bad)
        assert (body["title"], body["language"]) == (ok, "cpp"), bad
    await ada.close()


async def test_nul_typed_into_the_code_is_refused_at_the_edge(live: tuple[LiveServer, httpx.AsyncClient]) -> None:
    """Threshold: the sender is closed with 4400; neither the witness nor REST ever holds the NUL."""
    server, client = live
    sid = (await new_session(client))["id"]
    witness = await _connect(server, client, sid, "Witness")
    mallory = await _connect(server, client, sid, "Mallory")
    mallory.code.insert(0, "a\x00b")
    assert await _close_code(mallory) == 4400  # before: None (accepted)
    witness.code.insert(0, "# witness\n")
    body = await _rest_until(client, sid, lambda b: "# witness" in b["code"])
    assert "\x00" not in body["code"] and "\x00" not in witness.text
    await witness.close()
    await mallory.close()


# --- D: one encoded reply for every new peer of a large document ---------------------------------------------------


def test_new_peers_of_a_large_document_share_one_encoded_reply() -> None:
    """Threshold: with a 4 MiB document, each additional new peer (empty state vector) costs under 64 KiB of
    retained memory, not a copy of the document; after an edit the reply is encoded afresh."""
    size, peers = 4 << 20, 10
    big = SharedDoc()
    big.code.insert(0, "x" * size)
    room, _ = make_room(big.doc.get_update(), dataclasses.replace(LIMITS, max_code_bytes=2 * size))
    hands = [HandPeer(room, f"p{i}") for i in range(peers + 1)]

    def step2(hand: HandPeer) -> None:
        room.join(hand.peer)
        hand.channel.take()
        room.receive(hand.peer, p.sync_step1(Doc().get_state()))

    step2(hands[0])
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for hand in hands[1:]:
            step2(hand)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    per_peer = sum(s.size_diff for s in after.compare_to(before, "filename")) / peers
    replies = [hand.channel.sent[-1] for hand in hands]
    assert all(len(r) > size for r in replies)
    assert per_peer < 64 << 10, f"{per_peer:.0f} bytes per additional peer"  # before: ~4.2 MB
    # The document changed: the next new peer gets the new state.
    writer = HandPeer(room, "writer").join()
    writer.edit("# more\n")
    late = HandPeer(room, "late")
    step2(late)
    replica: Doc[Any] = Doc()
    replica.apply_update(p.parse_message(late.channel.sent[-1]).payload)
    assert str(replica.get("code", type=Text)).endswith("# more\n")
