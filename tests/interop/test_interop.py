"""Interop with stock Yjs clients: y-websocket's WebsocketProvider (Node, `npm ci --prefix tests/interop`)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import httpx

from tests.collab.yclient import join, new_session
from tests.conftest import LiveServer, skip_or_fail

HERE = Path(__file__).parent
CLIENTS = 4
EDITS = 40


def _node_ready() -> None:
    if shutil.which("node") and (HERE / "node_modules" / "y-websocket").is_dir():
        return
    skip_or_fail("Node or tests/interop/node_modules missing (run `npm ci --prefix tests/interop`)")


async def test_stock_clients_converge_share_awareness_and_match_rest(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    await check_stock_clients([server.ws_url], client)


async def check_stock_clients(ws_urls: list[str], client: httpx.AsyncClient) -> str:
    """Stock clients spread over ``ws_urls`` (processes of one cluster, or one server) co-edit, share awareness
    and see a REST write made through ``client``; returns the session id."""
    _node_ready()
    s = await new_session(client, language="python")
    people = [await join(client, s["id"], f"Person {i}") for i in range(CLIENTS)]
    proc = await asyncio.create_subprocess_exec(
        "node", str(HERE / "clients.mjs"), "|".join(f"{url}/v1/collab" for url in ws_urls), s["id"],
        json.dumps([p["token"] for p in people]), str(EDITS),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if not line:
            raise AssertionError((await proc.stderr.read()).decode()[-2000:])
        result = json.loads(line)
        assert result["initial"] == s["code"]  # every client started from the stored first update
        text = result["text"]
        for i in range(CLIENTS):
            assert f"<{i}.0>" not in text  # each client deleted its first marker
            for k in range(1, EDITS):
                assert text.count(f"<{i}.{k}>") == 1
        assert len(text) == len(s["code"]) + sum(
            len(f"<{i}.{k}>") for i in range(CLIENTS) for k in range(1, EDITS)
        )
        r = await client.get(f"/v1/sessions/{s['id']}")
        assert r.json()["code"] == text
        assert r.json()["language"] == "typescript"  # set through Yjs by a stock client
        # Others are seen with the identity the server stamped on their state, selection colour included (a
        # client's view of its own state is what it set).
        users = sorted(
            (a["user"]["name"], a["user"]["participantId"], a["user"]["colorLight"])
            for a in result["awareness"]
            if a["id"] != result["self"]
        )
        assert users == sorted((p["name"], p["id"], p["color"] + "33") for p in people[1:])
        # A REST write reaches every stock client live.
        new_text = text.replace("print", "console.log", 1) + "// from REST\n"
        r = await client.put(f"/v1/sessions/{s['id']}", json={"code": new_text})
        assert r.status_code == 200
        proc.stdin.write((json.dumps({"expect": new_text}) + "\n").encode())
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert json.loads(line) == {"ok": True}, (await proc.stderr.read()).decode()[-2000:]
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        return str(s["id"])
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
