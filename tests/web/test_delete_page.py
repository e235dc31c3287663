"""Deleting a session from the page: the owner's button, and what the others see."""

from __future__ import annotations

import shutil
import urllib.error
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import ThreadedServer
from tests.web.pages import join, wait_connected

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


def create_on_home(context: Any, base_url: str, title: str) -> Any:
    """Create a session from the start page (this browser keeps its owner key) and join it."""
    page = context.new_page()
    page.goto(base_url + "/")
    page.fill("#title", title)
    page.click("#create")
    page.wait_for_url("**/s/**")
    page.fill("#join-name", "Owner")
    page.click("#join-submit")
    wait_connected(page)
    return page


def test_the_owner_deletes_and_a_participant_sees_it(
    web_server: ThreadedServer, new_context: Any, tmp_path: Path
) -> None:
    owner = create_on_home(new_context(), web_server.base_url, "Delete me")
    session_id = owner.url.rsplit("/s/", 1)[1]
    grace = join(new_context(), web_server.base_url, session_id, "Grace Hopper")
    # Only the browser holding the owner key has the button.
    assert grace.locator("#delete-session").count() == 0

    owner.screenshot(path=str(tmp_path / "owner.png"))
    shutil.copyfile(tmp_path / "owner.png", "/tmp/ccl-owner-page.png")
    # Cancelling the confirmation deletes nothing.
    owner.once("dialog", lambda dialog: dialog.dismiss())
    owner.click("#delete-session")
    assert web_server.api("GET", f"/v1/sessions/{session_id}")["title"] == "Delete me"
    assert grace.locator("#conn[data-state=connected]").count() == 1

    messages: list[str] = []

    def accept(dialog: Any) -> None:
        messages.append(dialog.message)
        dialog.accept()

    owner.once("dialog", accept)
    owner.click("#delete-session")
    # The owner lands on the start page, and the session has left its list.
    owner.wait_for_url(web_server.base_url + "/")
    owner.wait_for_selector("#create")
    assert "cannot be undone" in messages[0]
    assert owner.locator("#recent a:has-text('Delete me')").count() == 0
    # The participant, connected at the time, is told.
    grace.wait_for_selector("h1:has-text('This session was deleted')")
    assert "no longer on the server" in grace.inner_text("body")
    shot = tmp_path / "deleted.png"
    grace.screenshot(path=str(shot))
    shutil.copyfile(shot, "/tmp/ccl-deleted-participant.png")
    owner.screenshot(path=str(tmp_path / "home.png"))
    shutil.copyfile(tmp_path / "home.png", "/tmp/ccl-deleted-owner-home.png")

    with pytest.raises(urllib.error.HTTPError) as gone:
        web_server.api("GET", f"/v1/sessions/{session_id}")
    assert gone.value.code == 404
    # Opening the old link again: the session is not found.
    again = grace.context.new_page()
    again.goto(f"{web_server.base_url}/s/{session_id}")
    again.wait_for_selector("h1:has-text('Session not found')")
