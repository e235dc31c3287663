"""The owner's Share menu makes new links and turns the editor link off; old links then open nothing, and say so."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codeconnect.config import Settings
from tests.web.conftest import ThreadedServer, start_threaded_server
from tests.web.pages import wait_connected
from tests.web.test_owner_controls import create_as_owner

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]  # its longest flow: 6 people, 3 links

ADMIN = "page-invite-links-admin-token-0123456789"


@pytest.fixture(scope="module")
def web_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    db = tmp_path_factory.mktemp("web-db") / "codeconnect.db"
    return Settings(database_url=f"sqlite+aiosqlite:///{db}", admin_token=ADMIN, auth="api-key")


@pytest.fixture(scope="module")
def open_server(web_server: ThreadedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    """A second server, where the session id is the invitation (`open` mode)."""
    db = tmp_path_factory.mktemp("open-db") / "codeconnect.db"
    server = start_threaded_server(Settings(database_url=f"sqlite+aiosqlite:///{db}"))
    yield server
    server.stop()


def keep_dialogs(page: Any) -> list[str]:
    """Accept every confirmation of ``page``, keeping what it asked."""
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return asked


def open_as_owner(context: Any, base_url: str, created: dict[str, Any], name: str) -> Any:
    """The browser that holds the session's owner key (as one that created it) opens its invite link and joins."""
    page = context.new_page()
    page.goto(base_url + "/")
    entry = {
        "id": created["id"], "title": created["title"], "language": created["language"],
        "ownerKey": created["ownerKey"], "openedAt": "2025-01-01T00:00:00Z",
    }  # fmt: skip
    page.evaluate("(entry) => localStorage.setItem('ccl.recent', JSON.stringify([entry]))", entry)
    page.goto(f"{base_url}/s/{created['id']}#invite={created['editorInvite']}")
    page.fill("#join-name", name)
    page.click("#join-submit")
    wait_connected(page)
    return page


def open_link(context: Any, link: str) -> Any:
    page = context.new_page()
    page.goto(link)
    return page


def join_by_link(context: Any, link: str, name: str) -> Any:
    page = open_link(context, link)
    page.fill("#join-name", name)
    page.click("#join-submit")
    wait_connected(page)
    return page


def share(page: Any) -> None:
    if page.get_attribute("#share", "aria-expanded") != "true":
        page.click("#share")
    page.wait_for_selector("#share-menu", state="visible")


def save(page: Any, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    page.screenshot(path=str(shot))
    shutil.copyfile(shot, f"/tmp/ccl-invite-{name}")


def test_the_owner_replaces_and_turns_off_the_links(
    web_server: ThreadedServer, new_context: Any, tmp_path: Path
) -> None:
    web_server.api("POST", "/v1/admin/workspaces", {"name": "hiring"}, bearer=ADMIN)
    key = web_server.api("POST", "/v1/admin/workspaces/hiring/keys", {}, bearer=ADMIN)["key"]
    created = web_server.api("POST", "/v1/sessions", {"title": "Interview", "code": "print(1)\n"}, bearer=key)
    base = web_server.base_url
    first_link = f"{base}/s/{created['id']}#invite={created['editorInvite']}"

    owner = open_as_owner(new_context(), base, created, "Olive")
    asked = keep_dialogs(owner)
    pat = join_by_link(new_context(), first_link, "Pat")
    share(pat)  # someone invited sees the links, but nothing to change them with
    assert pat.input_value("#copy-editor-link-url") == first_link
    assert pat.locator("#new-editor-link, #turn-off-editor-link, #new-viewer-link").count() == 0

    share(owner)
    assert owner.input_value("#copy-editor-link-url") == first_link
    old_view_link = owner.input_value("#copy-viewer-link-url")
    assert old_view_link == f"{base}/v/{created['viewerId']}"
    for button in ("#new-editor-link", "#turn-off-editor-link", "#new-viewer-link"):
        assert owner.is_visible(button), button
    save(owner, tmp_path, "owner-share-api-key.png")

    # A new editor link: the old one opens nothing any more, the new one does; Pat, who joined, stays.
    owner.click("#new-editor-link")
    owner.wait_for_function(
        "(old) => document.querySelector('#copy-editor-link-url')?.value !== old", arg=first_link
    )
    assert "The current editor link stops working" in asked[-1]
    second_link = owner.input_value("#copy-editor-link-url")
    assert second_link.startswith(f"{base}/s/{created['id']}#invite=inv_")
    assert "no longer works" in owner.inner_text("#share-message")
    stored = owner.evaluate(f"() => JSON.parse(localStorage.getItem('ccl.invite.{created['id']}'))")
    assert f"#invite={stored}" in second_link  # the owner's own invite is the new one
    # Pat's page learns it as its menu opens again: no dead link to hand on, and why there is none.
    pat.keyboard.press("Escape")
    share(pat)
    pat.wait_for_selector("#editor-link-row:has-text('Replaced or turned off')")
    assert pat.locator("#copy-editor-link-url").count() == 0
    assert "Ask them for the current one" in pat.inner_text("#editor-link-row")
    save(pat, tmp_path, "guest-share-replaced.png")

    late = open_link(new_context(), first_link)
    late.wait_for_selector("h1:has-text('This invite link no longer works')")
    assert "Ask them for the current link" in late.inner_text("main")
    assert late.locator("#join-name, .cm-content").count() == 0
    assert "print(1)" not in late.content()
    save(late, tmp_path, "old-link.png")
    newcomer = join_by_link(new_context(), second_link, "Nia")
    owner.wait_for_selector("#people li[data-online=true]:has-text('Nia')")
    pat.reload()
    wait_connected(pat)  # Pat joined before: the participant's token still opens the session

    # Turned off: nobody new gets in with it, and the owner's row says so with the way back.
    owner.click("#turn-off-editor-link")
    owner.wait_for_selector("#copy-editor-link-note:has-text('Nobody new can join as an editor until you make a')")
    assert "Nobody new can join as an editor" in asked[-1]
    assert owner.locator("#copy-editor-link-url").count() == 0
    assert owner.is_visible("#new-editor-link") and owner.inner_text("#new-editor-link") == "Make a new link"
    save(owner, tmp_path, "owner-share-turned-off.png")
    turned_away = open_link(new_context(), second_link)
    turned_away.wait_for_selector("h1:has-text('This invite link no longer works')")
    newcomer.reload()
    wait_connected(newcomer)
    # The owner's page keeps working with its owner key, reloaded too.
    owner.reload()
    wait_connected(owner)
    share(owner)
    owner.wait_for_selector("#copy-editor-link-note:has-text('A new link replaces it')")

    # A new read-only link: the old one opens nothing any more, and says what may have happened.
    owner.click("#new-viewer-link")
    owner.wait_for_function(
        "(old) => document.querySelector('#copy-viewer-link-url')?.value !== old", arg=old_view_link
    )
    assert "The current read-only link stops working" in asked[-1]
    new_view_link = owner.input_value("#copy-viewer-link-url")
    assert new_view_link.startswith(f"{base}/v/") and new_view_link != old_view_link
    watcher = open_link(new_context(), old_view_link)
    watcher.wait_for_selector("h1:has-text('Session not found')")
    assert "made a new read-only link" in watcher.inner_text("main")
    save(watcher, tmp_path, "old-read-only-link.png")
    viewer = join_by_link(new_context(), new_view_link, "Vic")
    assert viewer.is_visible("#read-only")
    # Pat's menu gives the new read-only link, not the one its page loaded with.
    if pat.get_attribute("#share", "aria-expanded") == "true":
        pat.keyboard.press("Escape")
    share(pat)
    pat.wait_for_function(
        "(link) => document.querySelector('#copy-viewer-link-url')?.value === link", arg=new_view_link
    )
    save(pat, tmp_path, "guest-share-new-viewer-link.png")

    # And an editor link again, which lets people in.
    owner.click("#new-editor-link")
    owner.wait_for_selector("#copy-editor-link-url")
    join_by_link(new_context(), owner.input_value("#copy-editor-link-url"), "Ren")


def test_open_mode_offers_a_new_read_only_link_only(
    open_server: ThreadedServer, new_context: Any, tmp_path: Path
) -> None:
    owner, session_id = create_as_owner(new_context(), open_server.base_url, "Pairing", "Olive")
    asked = keep_dialogs(owner)
    share(owner)
    assert owner.input_value("#copy-editor-link-url") == f"{open_server.base_url}/s/{session_id}"
    assert "Anyone with it can edit and run" in owner.inner_text("#editor-link-row")
    assert owner.locator("#new-editor-link, #turn-off-editor-link").count() == 0
    assert owner.is_visible("#new-viewer-link")
    save(owner, tmp_path, "owner-share-open.png")

    # A refusal is told in the menu, in plain words; the link stays as it was.
    old_view_link = owner.input_value("#copy-viewer-link-url")
    refusal = {"error": "owner_key_invalid", "detail": "The owner key does not match this session."}
    owner.route(
        "**/v1/sessions/*/invites",
        lambda route: route.fulfill(status=403, content_type="application/json", body=json.dumps(refusal)),
    )
    owner.click("#new-viewer-link")
    owner.wait_for_selector("#share-message.error:has-text('owner key is no longer accepted')")
    assert owner.input_value("#copy-viewer-link-url") == old_view_link
    save(owner, tmp_path, "owner-share-refused.png")
    owner.unroute("**/v1/sessions/*/invites")

    owner.click("#new-viewer-link")
    owner.wait_for_function(
        "(old) => document.querySelector('#copy-viewer-link-url')?.value !== old", arg=old_view_link
    )
    assert len(asked) == 2
    assert not owner.is_visible("#share-message.error")
    gone = open_link(new_context(), old_view_link)
    gone.wait_for_selector("h1:has-text('Session not found')")
    join_by_link(new_context(), owner.input_value("#copy-viewer-link-url"), "Vic")
