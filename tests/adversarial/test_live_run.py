"""Live output in presence: every page renders the ``run`` field of the others' awareness states, so a sender
that puts anything but a bounded run of valid shape there is closed (4400) and reaches nobody, while a valid one
is relayed as sent. The output never enters the document.

Each test states its pass threshold.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pycrdt import Array

from codeconnect.collab.awareness import LIVE_OUTPUT_MAX_BYTES, LIVE_OUTPUT_MAX_PIECES
from tests.collab.fakes import awareness_states
from tests.collab.yclient import YClient, collab_url, join, new_session
from tests.conftest import LiveServer, fresh_sqlite, servers_on

WAIT = 10.0

RUN = {
    "id": "0123456789abcdef0123456789abcdef",
    "language": "python",
    "startedAt": "2026-01-02T03:04:05.678Z",
    "phase": "running",
    "offset": 0,
    "output": [["stdout", "tick 1\n"]],
}


@pytest.fixture
async def live(sqlite_url: str) -> AsyncIterator[tuple[LiveServer, httpx.AsyncClient]]:
    await fresh_sqlite(sqlite_url)
    async with servers_on(sqlite_url) as factory:
        server = await factory()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            yield server, client


async def _connect(server: LiveServer, client: httpx.AsyncClient, sid: str, name: str) -> YClient:
    token = (await join(client, sid, name))["token"]
    return await YClient(collab_url(server.ws_url, sid, token)).connect()


def _states_of(c: YClient, client_id: int) -> list[Any]:
    return [state for cid, _clock, state in awareness_states(c.received) if cid == client_id and state is not None]


async def test_a_valid_live_run_is_relayed_and_never_stored(live: tuple[LiveServer, httpx.AsyncClient]) -> None:
    """Threshold: the witness receives the run as sent, then its next piece and its end (null); the document's
    runs stay empty and the code unchanged."""
    server, client = live
    sid = (await new_session(client))["id"]
    before = (await client.get(f"/v1/sessions/{sid}")).json()
    witness = await _connect(server, client, sid, "Witness")
    ada = await _connect(server, client, sid, "Ada")
    await ada.set_awareness({"user": {"name": "Ada"}, "cursor": None, "run": RUN})
    await witness.wait_for(lambda: witness.awareness.get(ada.doc.client_id, {}).get("run") == RUN)
    more = {**RUN, "offset": 7, "output": [["stdout", "x" * (LIVE_OUTPUT_MAX_BYTES - 10)], ["stderr", "y"]]}
    await ada.set_awareness({"cursor": None, "run": more})
    await witness.wait_for(lambda: witness.awareness[ada.doc.client_id].get("run") == more)
    await ada.set_awareness({"cursor": None, "run": None})
    await witness.wait_for(lambda: witness.awareness[ada.doc.client_id].get("run", 0) is None)
    assert not ada.closed.is_set()
    assert len(witness.doc.get("runs", type=Array)) == 0
    after = (await client.get(f"/v1/sessions/{sid}")).json()
    assert after["code"] == before["code"]
    for c in (witness, ada):
        await c.close()


@pytest.mark.parametrize(
    "run",
    [
        {**RUN, "output": [["stdout", "x" * (LIVE_OUTPUT_MAX_BYTES + 1)]]},
        {**RUN, "output": [["stdout", "x"]] * (LIVE_OUTPUT_MAX_PIECES + 1)},
        {**RUN, "output": [["stdin", "x"]]},
        {**RUN, "output": [["stdout", {"html": "<b>"}]]},
        {**RUN, "offset": -5},
        {**RUN, "id": "<script>alert(1)</script>"},
        {**RUN, "language": "cobol"},
        {**RUN, "phase": "Mallory won"},
        {**RUN, "by": {"name": "Ada"}},
        "running",
    ],
    ids=[
        "oversized-text",
        "too-many-pieces",
        "unknown-stream",
        "object-text",
        "negative-offset",
        "bad-id",
        "unknown-language",
        "free-text-phase",
        "extra-key",
        "string",
    ],
)
async def test_a_malformed_or_oversized_live_run_closes_its_sender_and_reaches_nobody(
    live: tuple[LiveServer, httpx.AsyncClient], run: Any
) -> None:
    """Threshold: the sender is closed with 4400; the witness, which meanwhile receives a valid state, never
    receives any state of the sender's."""
    server, client = live
    sid = (await new_session(client))["id"]
    witness = await _connect(server, client, sid, "Witness")
    good = await _connect(server, client, sid, "Good")
    mallory = await _connect(server, client, sid, "Mallory")
    await mallory.set_awareness({"user": {"name": "Mallory"}, "run": run})
    try:
        code = await mallory.wait_closed(WAIT)
    except TimeoutError:
        code = None
    assert code == 4400  # before: None (still open), the field silently dropped
    await good.set_awareness({"user": {"name": "Good"}, "cursor": None, "run": RUN})
    await witness.wait_for(lambda: good.doc.client_id in witness.awareness)
    assert _states_of(witness, mallory.doc.client_id) == []
    for c in (witness, good, mallory):
        await c.close()


async def test_presence_is_charged_by_its_size(live: tuple[LiveServer, httpx.AsyncClient]) -> None:
    """Every state relayed goes to everyone in the room, so a client sending full live-output states (8 KiB) as
    fast as it can made the server send 1.6 MB a second to each of the others, all within the message rate.
    Threshold: with the defaults (200 messages a second, a burst of 1,000, one message more per KiB relayed),
    600 such states sent back to back are not all relayed: the sender is closed with 4429 first (each costs about
    nine messages, so the burst and the grace run out within a few hundred); before, all 600 reached the witness
    and the sender stayed open. The witness stays connected."""
    server, client = live
    sid = (await new_session(client))["id"]
    witness = await _connect(server, client, sid, "Witness")
    mallory = await _connect(server, client, sid, "Mallory")
    chunk = "x" * (LIVE_OUTPUT_MAX_BYTES - 100)
    for i in range(600):
        if mallory.closed.is_set():
            break
        try:
            await mallory.set_awareness(
                {"cursor": None, "run": {**RUN, "offset": i * len(chunk), "output": [["stdout", chunk]]}}
            )
        except Exception:
            break  # the server closed the socket under us
    code = await mallory.wait_closed(WAIT * 3)
    assert code == 4429
    relayed = _states_of(witness, mallory.doc.client_id)
    assert len(relayed) < 600
    assert not witness.closed.is_set()
    for c in (witness, mallory):
        await c.close()
