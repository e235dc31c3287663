"""A server run's output while it is made: the NDJSON answer of ``POST /v1/sessions/{id}/execute``.

A client that sends ``Accept: application/x-ndjson`` gets one JSON object a line: ``{"type": "output", "stream":
"stdout" | "stderr" | "compile", "text": ...}`` as the program writes, then ``{"type": "result", "result": {...}}``
(the usual answer) or ``{"type": "error", "error": ..., "detail": ...}``. Refusals (403, 404, 409, 413, 429, 501)
come before the stream starts, as ordinary error answers. What is streamed is what the run keeps
(``CODECONNECT_EXEC_MAX_OUTPUT_BYTES`` a stream), so a print loop costs the server no more than a run without a
listener; the page republishes it to the others under its own rate limit.

The run is a task of its own, not the response's: a client that goes away stops it (its container is killed), and
the task still appends the run, as ``stopped``, to the session's shared output.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from codeconnect.errors import AppError
from codeconnect.execution.schemas import ExecuteResult

NDJSON = "application/x-ndjson"
log = logging.getLogger(__name__)

# Runs whose client left still finish (and publish); a reference keeps their tasks alive until then.
_running: set[asyncio.Task[ExecuteResult]] = set()


def wants_stream(accept: str | None) -> bool:
    return accept is not None and NDJSON in accept


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


async def _cancelled(future: asyncio.Future[Any]) -> None:
    """Cancel ``future`` and wait until it is: a task dropped while its cancellation is pending is reported as
    destroyed while pending."""
    future.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await future


class LiveRun:
    """The output of one run as it arrives, decoded per stream (a character split across two reads stays whole)."""

    def __init__(self) -> None:
        self.admitted = asyncio.Event()
        self.stop: asyncio.Event | None = None  # the run's stop switch, once it has one
        self._pieces: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}

    def hear(self, stream: str, data: bytes) -> None:
        decoder = self._decoders.get(stream)
        if decoder is None:
            decoder = self._decoders[stream] = codecs.getincrementaldecoder("utf-8")("replace")
        text = decoder.decode(data)
        if text:
            self._pieces.put_nowait((stream, text))

    def start(self, run: Coroutine[Any, Any, ExecuteResult]) -> asyncio.Task[ExecuteResult]:
        task = asyncio.create_task(run)
        _running.add(task)
        task.add_done_callback(_running.discard)
        return task

    async def admission(self, task: asyncio.Task[ExecuteResult]) -> None:
        """Return once the run has its slot; a refusal (or any failure before) is raised here, as a plain answer."""
        admitted = asyncio.ensure_future(self.admitted.wait())
        try:
            await asyncio.wait({task, admitted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await _cancelled(admitted)
        if task.done() and not self.admitted.is_set():
            task.result()  # raises the refusal

    def _drain(self, first: tuple[str, str] | None = None) -> list[bytes]:
        """``first`` and what is queued behind it, as lines: neighbouring pieces of one stream go out as one."""
        merged: list[tuple[str, str]] = [first] if first is not None else []
        while not self._pieces.empty():
            stream, text = self._pieces.get_nowait()
            if merged and merged[-1][0] == stream:
                merged[-1] = (stream, merged[-1][1] + text)
            else:
                merged.append((stream, text))
        return [_line({"type": "output", "stream": stream, "text": text}) for stream, text in merged]

    async def lines(self, task: asyncio.Task[ExecuteResult]) -> AsyncIterator[bytes]:
        try:
            while not task.done():
                waiting = asyncio.ensure_future(self._pieces.get())
                try:
                    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not waiting.done():
                        await _cancelled(waiting)
                if waiting.cancelled():
                    break
                for line in self._drain(waiting.result()):
                    yield line
            for line in self._drain():
                yield line
            try:
                result = await task
            except AppError as exc:
                yield _line({"type": "error", "error": exc.code, "detail": exc.detail})
                return
            except Exception:
                log.exception("a streamed run failed")
                yield _line({"type": "error", "error": "internal_error", "detail": "The run failed on the server."})
                return
            yield _line({"type": "result", "result": result.model_dump(mode="json", by_alias=True)})
        finally:
            # The client left (or the response failed) before the end: nobody is waiting, stop the run.
            if not task.done() and self.stop is not None:
                self.stop.set()
