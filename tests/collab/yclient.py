"""A minimal Yjs client on pycrdt for tests: speaks the y-websocket protocol like a stock provider."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
from pycrdt import Doc, Map, Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from codeconnect.collab import protocol as p
from codeconnect.collab.awareness import encode_entries


class YClient:
    """One connection: a local Doc kept in sync with the server, plus awareness states seen."""

    def __init__(self, url: str, *, doc: Doc | None = None, client_id: int | None = None) -> None:
        self.url = url
        self.doc = doc if doc is not None else Doc(client_id=client_id)
        self.code = self.doc.get("code", type=Text)
        self.meta = self.doc.get("meta", type=Map)
        self.ws: ClientConnection | None = None
        self.synced = asyncio.Event()
        self.awareness: dict[int, Any] = {}
        self.awareness_clock = 0
        self.received: list[bytes] = []
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed = asyncio.Event()
        self.changed = asyncio.Event()

    async def connect(self, *, wait_sync: bool = True, sync_timeout: float = 10, **kwargs: Any) -> YClient:
        self.ws = await connect(self.url, max_size=None, **kwargs)
        self._sub = self.doc.observe(self._on_local)
        self._task = asyncio.create_task(self._reader())
        await self._safe_send(p.sync_step1(self.doc.get_state()))
        if wait_sync:
            # Whichever comes first: a refusal (a close) is reported with its code, not as a bare timeout.
            synced = asyncio.ensure_future(self.synced.wait())
            closed = asyncio.ensure_future(self.closed.wait())
            try:
                await asyncio.wait({synced, closed}, timeout=sync_timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                synced.cancel()
                closed.cancel()
            if not self.synced.is_set():
                state = f"closed {self.close_code} {self.close_reason!r}" if self.closed.is_set() else "no answer"
                raise TimeoutError(f"not synced within {sync_timeout} s ({state}): {self.url.split('?')[0]}")
        return self

    def _on_local(self, event: Any) -> None:
        if getattr(self, "_applying", False):
            return
        if self.ws is not None and len(event.update) > 2:
            asyncio.get_running_loop().create_task(self._safe_send(p.sync_update(event.update)))

    async def _safe_send(self, data: bytes) -> None:
        try:
            assert self.ws is not None
            await self.ws.send(data)
        except ConnectionClosed:
            pass

    async def _reader(self) -> None:
        assert self.ws is not None
        try:
            async for data in self.ws:
                assert isinstance(data, bytes)
                self.received.append(data)
                self.handle(data)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
            self.closed.set()

    def handle(self, data: bytes) -> None:
        msg = p.parse_message(data)
        if msg.type == p.MessageType.SYNC:
            if msg.sync_type == p.SyncType.STEP1:
                asyncio.get_running_loop().create_task(self._safe_send(p.sync_step2(self.doc.get_update(msg.payload))))
            else:
                self._applying = True
                try:
                    self.doc.apply_update(msg.payload)
                finally:
                    self._applying = False
                if msg.sync_type == p.SyncType.STEP2:
                    self.synced.set()
                self.changed.set()
        elif msg.type == p.MessageType.AWARENESS:
            r = p.Reader(msg.payload)
            for _ in range(r.var_uint()):
                cid, _clock, state = r.var_uint(), r.var_uint(), json.loads(r.var_string())
                if state is None:
                    self.awareness.pop(cid, None)
                else:
                    self.awareness[cid] = state
            self.changed.set()
        elif msg.type == p.MessageType.AUTH:
            self.changed.set()  # kept in `received`: a waiter may be looking for it

    async def set_awareness(self, state: Any, client_id: int | None = None) -> None:
        self.awareness_clock += 1
        cid = self.doc.client_id if client_id is None else client_id
        payload = encode_entries([(cid, self.awareness_clock, json.dumps(state).encode())])
        await self.send(p.awareness_message(payload))

    async def send(self, data: bytes | str) -> None:
        assert self.ws is not None
        await self.ws.send(data)

    @property
    def text(self) -> str:
        return str(self.code)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        async def loop() -> None:
            while not predicate():
                self.changed.clear()
                if predicate():
                    return
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout)

    async def wait_closed(self, timeout: float = 10) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._sub is not None:
            self.doc.unobserve(self._sub)
            self._sub = None


async def new_session(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await client.post("/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def join(client: httpx.AsyncClient, session_id: str, name: str = "Ada", role: str = "editor") -> dict[str, Any]:
    r = await client.post(f"/v1/sessions/{session_id}/participants", json={"name": name, "role": role})
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


def collab_url(ws_base: str, session_id: str, token: str | None) -> str:
    url = f"{ws_base}/v1/collab/{session_id}"
    return url if token is None else f"{url}?token={token}"
