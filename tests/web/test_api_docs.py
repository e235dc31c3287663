"""The API documentation pages on a server without internet: Swagger UI and ReDoc come from the process itself.

Every request to anything but the server is blocked and recorded; the pages must still list the API's operations,
and must not have tried to reach anywhere else (a CDN, Google fonts, a favicon, a validator).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.web.conftest import ThreadedServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


def offline_page(context: Any, base_url: str) -> tuple[Any, list[str]]:
    """A page of ``context`` that can reach only the server; returns it and the list of refused URLs."""
    server = urlsplit(base_url).netloc
    elsewhere: list[str] = []

    def route(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).netloc == server:
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", route)
    return context.new_page(), elsewhere


def create_session_summary(web_server: ThreadedServer) -> str:
    summary: str = web_server.api("GET", "/openapi.json")["paths"]["/v1/sessions"]["post"]["summary"]
    return summary


def test_swagger_ui_lists_the_operations_offline(web_server: ThreadedServer, new_context: Any) -> None:
    page, elsewhere = offline_page(new_context(), web_server.base_url)
    started = time.perf_counter()
    page.goto(f"{web_server.base_url}/docs")
    operation = page.locator(".opblock-post .opblock-summary", has=page.locator("[data-path='/v1/sessions']"))
    operation.wait_for()
    loaded = time.perf_counter() - started
    summary = " ".join(operation.inner_text().split())
    assert summary.startswith("POST /v1/sessions"), summary
    assert create_session_summary(web_server) in summary
    # Every operation of the API is there, not only the first.
    paths = web_server.api("GET", "/openapi.json")["paths"]
    count = sum(len(ops) for ops in paths.values())
    assert page.locator(".opblock").count() == count
    page.wait_for_load_state("networkidle")
    assert elsewhere == []
    print(f"/docs offline: operations listed after {loaded:.2f} s")


def test_redoc_lists_the_operations_offline(web_server: ThreadedServer, new_context: Any) -> None:
    page, elsewhere = offline_page(new_context(), web_server.base_url)
    started = time.perf_counter()
    page.goto(f"{web_server.base_url}/redoc")
    # The menu lists each operation under its tag, by its summary and with its method as a label.
    summary = create_session_summary(web_server)
    item = page.locator("li[role=menuitem][data-item-id$='/operation/create_session_v1_sessions_post']")
    item.wait_for(state="attached")
    loaded = time.perf_counter() - started
    page.locator("li[role=menuitem][data-item-id='tag/sessions']").click()
    item.wait_for()
    assert item.locator(".operation-type.post").inner_text().lower() == "post"
    assert summary in item.inner_text()
    # Its section shows the method and the path: "POST /v1/sessions".
    item.click()
    endpoint = page.locator("[id$='/operation/create_session_v1_sessions_post'] button:has(.http-verb.post)").first
    endpoint.wait_for()
    assert " ".join(endpoint.inner_text().split()).upper() == "POST /V1/SESSIONS"
    page.wait_for_load_state("networkidle")
    assert elsewhere == []
    print(f"/redoc offline: menu listed after {loaded:.2f} s")
