"""A server where the session id alone grants nothing (`api-key` mode): the invite link opens the pad."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from codeconnect.config import Settings
from tests.web.conftest import ThreadedServer, watch_for_page_errors
from tests.web.pages import code, wait_connected

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

ADMIN = "page-invite-admin-token-0123456789"


@pytest.fixture(scope="module")
def web_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    db = tmp_path_factory.mktemp("web-db") / "codeconnect.db"
    return Settings(database_url=f"sqlite+aiosqlite:///{db}", admin_token=ADMIN, auth="api-key")


def test_the_invite_link_opens_the_pad_and_the_bare_link_does_not(
    web_server: ThreadedServer, new_context: Any, tmp_path: Path
) -> None:
    web_server.api("POST", "/v1/admin/workspaces", {"name": "interviews"}, bearer=ADMIN)
    key = web_server.api("POST", "/v1/admin/workspaces/interviews/keys", {}, bearer=ADMIN)["key"]
    session = web_server.api("POST", "/v1/sessions", {"title": "Interview", "code": "print(1)\n"}, bearer=key)
    link = f"{web_server.base_url}/s/{session['id']}"

    # without the invite, the page gets nothing but a refusal
    stranger = new_context().new_page()
    stranger.goto(link)
    stranger.wait_for_selector("text=This session needs its invite")
    stranger.screenshot(path=str(tmp_path / "bare-link.png"))
    assert "print(1)" not in stranger.content()

    context = new_context()
    errors = watch_for_page_errors(context)
    candidate = context.new_page()
    candidate.goto(f"{link}#invite={session['editorInvite']}")
    candidate.fill("#join-name", "Candidate")
    candidate.click("#join-submit")
    wait_connected(candidate)
    assert code(candidate) == "print(1)\n"
    assert "invite" not in candidate.url  # taken out of the address bar
    # a reload still gets in (the invite and the participant's token are kept by this browser)
    candidate.reload()
    wait_connected(candidate)
    candidate.click("#share")
    editor_link = candidate.input_value("#copy-editor-link-url")
    assert f"#invite={session['editorInvite']}" in editor_link
    candidate.screenshot(path=str(tmp_path / "invited.png"))
    assert not errors, errors
