"""Who switched the language: every page says so in a short notice, naming the person the server knows."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from tests.collab.yclient import YClient, collab_url
from tests.web.conftest import ThreadedServer
from tests.web.pages import join, set_code, wait_code, wait_connected

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

T = TypeVar("T")
NOTICE = "#notice"


def on_server_loop(web_server: ThreadedServer, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on the server thread's event loop (the tests' own thread drives the browser)."""
    return asyncio.run_coroutine_threadsafe(coroutine, web_server.loop).result(20)


def watch_notices(*pages: Any) -> None:
    """Record on each page every notice it shows (made visible, or its text replaced while visible)."""
    for page in pages:
        page.evaluate(
            """() => {
                const el = document.querySelector('#notice');
                window.shownNotices = [];
                new MutationObserver(() => { if (!el.hidden) window.shownNotices.push(el.textContent); })
                    .observe(el, { attributes: true, childList: true, characterData: true, subtree: true });
            }"""
        )


def wait_notice(page: Any, text: str) -> None:
    """Until the page has shown the notice ``text`` (see :func:`watch_notices`). A notice is visible for 6 s; the
    test reads several pages one after another, and on a loaded machine a page's notice may be hidden again by the
    time the test gets to it, so what is waited for is that it was shown, not that it still is."""
    page.wait_for_function("text => (window.shownNotices || []).includes(text)", arg=text)


def join_read_only(context: Any, web_server: ThreadedServer, session_id: str, name: str) -> Any:
    """Open the session's read-only link (``/v/{viewerId}``) and join there."""
    viewer_id = web_server.api("GET", f"/v1/sessions/{session_id}")["viewerId"]
    page = context.new_page()
    page.goto(f"{web_server.base_url}/v/{viewer_id}")
    page.fill("#join-name", name)
    page.click("#join-submit")
    wait_connected(page)
    return page


def test_everyone_is_told_who_switched_the_language(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Switching")
    ada = join(new_context(), web_server.base_url, session_id, "Ada")
    grace = join(new_context(), web_server.base_url, session_id, "Grace")
    watcher = join(new_context(), web_server.base_url, session_id, "Watcher", view=True)
    viewer = join_read_only(new_context(), web_server, session_id, "Viewer")
    everyone = (ada, grace, watcher, viewer)
    # Opening the pad tells nobody anything: the language was already there.
    for page in everyone:
        assert page.locator(NOTICE).is_hidden()
    watch_notices(*everyone)

    ada.select_option("#language", "java")
    for page in (grace, watcher, viewer):
        wait_notice(page, "Ada switched to Java")
    wait_notice(ada, "You switched to Java")

    grace.select_option("#language", "cpp")
    for page in (ada, watcher, viewer):
        wait_notice(page, "Grace switched to C++")
    wait_notice(grace, "You switched to C++")

    # A switch through the API has no person behind it on the pad.
    web_server.api("PUT", f"/v1/sessions/{session_id}/language", {"language": "python"})
    for page in everyone:
        wait_notice(page, "The language was switched to Python")

    # Someone opening the pad afterwards is not told about switches that happened before.
    late = join(new_context(), web_server.base_url, session_id, "Late")
    late.wait_for_selector(".cm-editor[data-language=python]")
    # An edit made after the late page loaded, seen there: the page has handled everything before it too.
    set_code(grace, "print('after the switches')\n")
    wait_code(late, "text.includes('after the switches')")
    assert late.locator(NOTICE).is_hidden()


def test_the_notice_names_the_real_participant_not_a_claimed_name(
    web_server: ThreadedServer, new_context: Any
) -> None:
    session_id = web_server.create_session("Who was it")
    grace = join(new_context(), web_server.base_url, session_id, "Grace")
    join(new_context(), web_server.base_url, session_id, "Ada")
    watch_notices(grace)
    mallory = web_server.api("POST", f"/v1/sessions/{session_id}/participants", {"name": "Mallory"})
    url = collab_url(web_server.live.ws_url, session_id, mallory["token"])

    async def switch_as_someone_else() -> YClient:
        client = await YClient(url).connect(ping_interval=None)
        # Claims to be Ada in its awareness state; the server relays its real identity instead.
        await client.set_awareness({"user": {"name": "Ada", "color": "#ff0000", "participantId": "x"}})
        await client.wait_for(lambda: client.doc.client_id in client.awareness)
        client.meta["language"] = "java"
        return client

    client = on_server_loop(web_server, switch_as_someone_else())
    try:
        wait_notice(grace, "Mallory switched to Java")
    finally:
        on_server_loop(web_server, client.close())


def test_a_switch_made_offline_is_told_when_it_arrives(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Offline switch")
    grace = join(new_context(), web_server.base_url, session_id, "Grace")
    ada_context = new_context()
    ada = join(ada_context, web_server.base_url, session_id, "Ada")
    watch_notices(grace)
    ada_context.set_offline(True)
    ada.wait_for_selector("#conn:not([data-state=connected])")
    ada.select_option("#language", "typescript")
    ada_context.set_offline(False)
    wait_connected(ada)
    wait_notice(grace, "Ada switched to TypeScript")
    # The highlighting that could not be fetched offline arrives once the browser is back online.
    ada.wait_for_selector(".cm-editor[data-highlighted=typescript]")
