"""Fixtures for the web page: a built page, a real server in its own thread, and Debian's Chromium.

Browser tests use Playwright's sync API, so the server runs on its own event loop in a thread; one server and one
browser serve a whole module (starting Chromium costs more than most of the tests).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from codeconnect.config import Settings
from codeconnect.db import run_migrations
from codeconnect.web.assets import PACKAGE_STATIC_DIR
from tests.conftest import LiveServer, skip_or_fail, start_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require(condition: bool, message: str) -> None:
    """Skip with the reason; under CI=true a missing prerequisite is a failure instead."""
    if not condition:
        skip_or_fail(message)


def require_built_page() -> None:
    require(
        (PACKAGE_STATIC_DIR / "index.html").is_file(),
        "the web page is not built (scripts/build-web, which scripts/test runs)",
    )


@dataclass
class ThreadedServer:
    """A real uvicorn server running on its own event loop in a thread."""

    live: LiveServer
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return self.live.base_url

    def api(self, method: str, path: str, body: dict[str, Any] | None = None, bearer: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if bearer is not None:  # an admin token or an API key
            headers["Authorization"] = f"Bearer {bearer}"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=15) as response:
            return json.load(response)

    def create_session(self, title: str = "Pairing", language: str = "python") -> str:
        session_id: str = self.api("POST", "/v1/sessions", {"title": title, "language": language})["id"]
        return session_id

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.live.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


def start_threaded_server(settings: Settings) -> ThreadedServer:
    if "web_preload_runners" not in settings.model_fields_set:
        # Pages load a runner only when a test presses Run: loading Pyodide in every editor's page costs seconds of
        # CPU a page, and most tests run nothing. (tests/web/test_runners.py covers the preloading itself.)
        settings = settings.model_copy(update={"web_preload_runners": False})
    loop = asyncio.new_event_loop()
    started: dict[str, LiveServer | BaseException] = {}
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(run_migrations(settings.database_url))
            started["server"] = loop.run_until_complete(start_server(settings))
        except BaseException as exc:  # reported to the test thread below
            started["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=serve, name="web-test-server", daemon=True)
    thread.start()
    if not ready.wait(60):
        raise RuntimeError("the test server did not start")
    if "error" in started:
        raise RuntimeError("the test server did not start") from started["error"]  # type: ignore[arg-type]
    live = started["server"]
    assert isinstance(live, LiveServer)
    return ThreadedServer(live, loop, thread)


@pytest.fixture(scope="module")
def web_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of the module's server; a module may override this fixture."""
    db = tmp_path_factory.mktemp("web-db") / "codeconnect.db"
    return Settings(database_url=f"sqlite+aiosqlite:///{db}")


@pytest.fixture(scope="module")
def web_server(web_settings: Settings) -> Iterator[ThreadedServer]:
    require_built_page()
    server = start_threaded_server(web_settings)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require(Path(CHROMIUM).is_file() and shutil.which(CHROMIUM) is not None, f"Chromium is not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def watch_for_page_errors(context: Any) -> list[str]:
    """Collect uncaught exceptions and CSP violations of every page of ``context``."""
    errors: list[str] = []

    def on_page(page: Any) -> None:
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error.stack or error}"))
        page.on(
            "console",
            lambda message: errors.append(f"{page.url}: {message.text}")
            if message.type == "error" and "Content Security Policy" in message.text
            else None,
        )

    context.on("page", on_page)
    return errors


def open_context(browser: Any, **options: Any) -> Any:
    """A browser profile of its own, as the tests see the page: 1280x760, and asking for less motion, so that
    the caret does not blink. A blinking caret draws frames all the time; steady, an open page costs half the CPU
    while nothing changes (tests/web/test_comforts.py checks both kinds of caret)."""
    return browser.new_context(**{"viewport": {"width": 1280, "height": 760}, "reduced_motion": "reduce", **options})


@pytest.fixture
def new_context(browser: Any) -> Iterator[Any]:
    """``new_context()`` opens an isolated browser profile (own storage); all are closed after the test, which
    fails if any page threw an uncaught exception."""
    contexts: list[Any] = []
    errors: list[str] = []

    def factory(**options: Any) -> Any:
        context = open_context(browser, **options)
        context.set_default_timeout(20_000)
        contexts.append((context, watch_for_page_errors(context)))
        return context

    yield factory
    for context, watched in contexts:
        context.close()
        errors.extend(watched)
    assert not errors, errors
