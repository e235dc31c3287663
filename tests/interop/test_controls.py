"""A stock y-websocket client (Node) through the owner's controls: told of the end without being disconnected,
stopped for good by a removal (4403) instead of reconnecting in a loop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.collab.yclient import join, new_session
from tests.conftest import LiveServer
from tests.interop.test_interop import HERE, _node_ready


async def test_a_stock_client_through_end_and_removal(server: LiveServer, client: httpx.AsyncClient) -> None:
    _node_ready()
    s = await new_session(client)
    owner = {"X-Owner-Key": s["ownerKey"]}
    ada = await join(client, s["id"], "Ada")
    proc = await asyncio.create_subprocess_exec(
        "node", str(HERE / "controls.mjs"), f"{server.ws_url}/v1/collab", s["id"], ada["token"],
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

    async def step(name: str) -> Any:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write((json.dumps({"await": name}) + "\n").encode())
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            raise AssertionError((await proc.stderr.read()).decode()[-2000:])
        return json.loads(line)

    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert json.loads(line) == {"ready": True}, (await proc.stderr.read()).decode()[-2000:]
        assert (await client.post(f"/v1/sessions/{s['id']}/end", headers=owner)).status_code == 200
        assert await step("ended") == {"ended": True, "connected": True, "sockets": 1}
        removal = await client.delete(f"/v1/sessions/{s['id']}/participants/{ada['id']}", headers=owner)
        assert removal.status_code == 204
        assert await step("removed") == {"code": 4403, "shouldConnect": False, "sockets": 1}
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        # Its edit after the end never reached the session.
        assert "after the end" not in (await client.get(f"/v1/sessions/{s['id']}")).json()["code"]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
