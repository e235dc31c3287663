"""Size limits of requests: the body, enforced as it arrives rather than after it is buffered, and the one rule
for text measured in bytes (code and stdin), whatever the route."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codeconnect.errors import PayloadTooLarge, error_response


def check_text_bytes(what: str, text: str, limit: int, code: str) -> None:
    """413 with ``code`` when ``text`` is over ``limit`` bytes of UTF-8. Request schemas can only count
    characters, so they state the limit and leave it to this one check (one rule, one status)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise PayloadTooLarge(f"{what} is {size} bytes; the limit is {limit} bytes.", code=code)


class BodySizeLimit:
    """Refuse bodies over ``max_bytes`` with 413: at once when Content-Length says so, otherwise as soon as
    the streamed body passes the limit (the rest is never read into memory)."""

    def __init__(self, app: ASGIApp, max_bytes: int, paths: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = paths or {}  # paths with a limit of their own (a session's import)

    def _detail(self, limit: int) -> str:
        return f"The request body is larger than the limit of {limit} bytes."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.paths.get(scope["path"], self.max_bytes)
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0:
                    await error_response(400, "bad_request", "Invalid Content-Length header.")(
                        scope, receive, send
                    )
                    return
                if declared > limit:
                    response = error_response(413, "payload_too_large", self._detail(limit))
                    await response(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, self._detail(limit))
            return message

        await self.app(scope, limited_receive, send)
