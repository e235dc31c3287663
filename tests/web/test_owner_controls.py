"""The owner's controls in a real browser: the owner (the browser that created the session) ends, reopens and
removes; a participant sees the session end (banner, read-only editor) and is told why it was removed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import ThreadedServer
from tests.web.pages import code, join, wait_code, wait_connected

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def create_as_owner(context: Any, base_url: str, title: str, name: str) -> tuple[Any, str]:
    """Create a session from the home page (this browser keeps its owner key) and join it."""
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the controls' confirmations
    page.goto(base_url + "/")
    page.fill("#title", title)
    page.click("#create")
    page.wait_for_url("**/s/*")
    page.fill("#join-name", name)
    page.click("#join-submit")
    wait_connected(page)
    return page, page.url.rsplit("/", 1)[-1]


def type_at_end(page: Any, text: str) -> None:
    page.click(".cm-content")
    page.keyboard.press("ControlOrMeta+End")
    page.keyboard.insert_text(text)


def test_the_owner_ends_and_reopens_the_session(web_server: ThreadedServer, new_context: Any, tmp_path: Path) -> None:
    owner, session_id = create_as_owner(new_context(), web_server.base_url, "Interview", "Olive")
    pat = join(new_context(), web_server.base_url, session_id, "Pat")
    assert owner.is_visible("#end-session") and pat.locator("#end-session").count() == 0
    assert pat.locator(".remove-person").count() == 0  # only the owner's page removes people

    owner.click("#end-session")
    pat.wait_for_selector("#banner:has-text('The session owner ended this session')")
    owner.wait_for_selector("#banner:has-text('You ended this session')")
    assert owner.text_content("#end-session") == "Reopen session"
    owner_shot = tmp_path / "owner-ended.png"
    owner.screenshot(path=str(owner_shot))
    shutil.copyfile(owner_shot, "/tmp/ccl-controls-owner.png")
    assert pat.is_disabled("#run") and pat.is_disabled("#language")
    before = code(pat)
    type_at_end(pat, "# typed after the end\n")
    assert code(pat) == before  # the editor is read-only
    # Nor did anything reach the owner or the server (the server would refuse it anyway).
    assert "typed after the end" not in web_server.api("GET", f"/v1/sessions/{session_id}")["code"]
    shot = tmp_path / "participant-ended.png"
    pat.screenshot(path=str(shot))
    shutil.copyfile(shot, "/tmp/ccl-controls-ended.png")

    # Someone opening the session now sees it ended from the start.
    late = join(new_context(), web_server.base_url, session_id, "Late")
    late.wait_for_selector("#banner:has-text('The session owner ended this session')")

    owner.click("#end-session")
    pat.wait_for_selector("#banner", state="hidden")
    late.wait_for_selector("#banner", state="hidden")
    assert owner.text_content("#end-session") == "End session"
    type_at_end(pat, "# after the reopen\n")
    wait_code(owner, "text.includes('# after the reopen')")


def test_the_owner_removes_a_participant(web_server: ThreadedServer, new_context: Any, tmp_path: Path) -> None:
    owner, session_id = create_as_owner(new_context(), web_server.base_url, "Pairing", "Olive")
    pat_context = new_context()
    pat = join(pat_context, web_server.base_url, session_id, "Pat")
    owner.wait_for_selector("#people li[data-online=true]:has-text('Pat')")

    owner.click("#people li:has-text('Pat') .remove-person")
    pat.wait_for_selector("#banner:has-text('The session owner removed you')")
    before = code(pat)
    type_at_end(pat, "# typed after removal\n")
    assert code(pat) == before
    assert pat.is_disabled("#run")
    # Gone from the owner's list (its presence and its row).
    owner.wait_for_selector("#people li:has-text('Pat')", state="detached")
    shot = tmp_path / "participant-removed.png"
    pat.screenshot(path=str(shot))
    shutil.copyfile(shot, "/tmp/ccl-controls-removed.png")

    # Its token is forgotten: reloading asks for a name, to join again as someone new.
    pat.reload()
    pat.wait_for_selector("#join-name")
