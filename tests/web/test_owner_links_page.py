"""Owner links on the page: an integration hands the owner's page to a person; the owner opens it on another
device; a used link opens nothing as owner, and says so."""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codeconnect.config import Settings
from tests.web.conftest import ThreadedServer, start_threaded_server
from tests.web.pages import wait_connected
from tests.web.test_owner_controls import create_as_owner

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

ADMIN = "page-owner-links-admin-token-0123456789"
REFUSED = "This owner link was used or has expired; ask for a new one."
OWNER_CONTROLS = ("#end-session", "#session-rules", "#delete-session")


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


def make_owner_link(server: ThreadedServer, session_id: str, owner_key: str) -> dict[str, Any]:
    """What an integration does with the owner key it got when it created the session."""
    request = urllib.request.Request(
        f"{server.base_url}/v1/sessions/{session_id}/owner-links", method="POST", headers={"X-Owner-Key": owner_key}
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        assert response.status == 201
        link: dict[str, Any] = json.load(response)
        return link


def save(page: Any, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    page.screenshot(path=str(shot))
    shutil.copyfile(shot, f"/tmp/ccl-owner-link-{name}")


def join_as(page: Any, name: str) -> None:
    page.fill("#join-name", name)
    page.click("#join-submit")
    wait_connected(page)


def test_an_integration_hands_the_owners_page_to_the_interviewer(
    web_server: ThreadedServer, new_context: Any, tmp_path: Path
) -> None:
    web_server.api("POST", "/v1/admin/workspaces", {"name": "hiring"}, bearer=ADMIN)
    key = web_server.api("POST", "/v1/admin/workspaces/hiring/keys", {}, bearer=ADMIN)["key"]
    created = web_server.api("POST", "/v1/sessions", {"title": "Interview", "code": "print(1)\n"}, bearer=key)
    link = make_owner_link(web_server, created["id"], created["ownerKey"])
    url = web_server.base_url + link["url"]
    assert url == f"{web_server.base_url}/s/{created['id']}#owner={link['code']}"

    # A fresh browser, no invite, no key: the link alone opens the owner's page.
    interviewer = new_context().new_page()
    interviewer.goto(url)
    interviewer.wait_for_selector("#join-name")
    assert interviewer.evaluate("() => location.href") == f"{web_server.base_url}/s/{created['id']}"
    assert link["code"] not in interviewer.evaluate("() => location.href + document.body.innerHTML")
    join_as(interviewer, "Iris")
    for control in OWNER_CONTROLS:
        assert interviewer.is_visible(control), control
    assert "owner's controls" in interviewer.inner_text("#notice")
    save(interviewer, tmp_path, "claimed.png")
    # Its owner's page works: the rules open, and the session ends for everyone.
    interviewer.click("#session-rules")
    interviewer.wait_for_selector("#rules-dialog", state="visible")
    interviewer.keyboard.press("Escape")
    interviewer.on("dialog", lambda dialog: dialog.accept())
    interviewer.click("#end-session")
    interviewer.wait_for_selector("#end-session:has-text('Reopen session')")

    # The same link again, in another fresh browser: refused, said plainly, and no owner's controls.
    late = new_context().new_page()
    late.goto(url)
    late.wait_for_selector("h1:has-text('This owner link does not work')")
    assert REFUSED in late.inner_text("main")
    assert late.evaluate("() => location.hash") == ""
    assert late.locator(", ".join(OWNER_CONTROLS) + ", .cm-content").count() == 0
    assert "print(1)" not in late.content()
    save(late, tmp_path, "refused.png")


def test_the_owner_opens_the_page_on_another_device_from_the_share_menu(
    open_server: ThreadedServer, new_context: Any, tmp_path: Path
) -> None:
    owner, session_id = create_as_owner(new_context(), open_server.base_url, "Pairing", "Olive")
    owner.click("#share")
    owner.wait_for_selector("#owner-link-row:has-text('Open as owner elsewhere')")
    assert owner.locator("#copy-owner-link-url").count() == 0  # a credential: never made unasked
    owner.click("#make-owner-link")
    owner.wait_for_selector("#copy-owner-link-url")
    link = owner.input_value("#copy-owner-link-url")
    assert link.startswith(f"{open_server.base_url}/s/{session_id}#owner=own_")
    assert "Works once, until" in owner.inner_text("#owner-link-expiry")
    assert "Whoever opens this link becomes this session's owner" in owner.inner_text("#owner-link-warning")
    save(owner, tmp_path, "share-menu.png")

    laptop = new_context().new_page()
    laptop.goto(link)
    join_as(laptop, "Olive (laptop)")
    for control in OWNER_CONTROLS:
        assert laptop.is_visible(control), control
    assert "#" not in laptop.evaluate("() => location.href")

    # Used: someone else opening it is told so and goes on as anyone with the session's link would, no owner.
    other = new_context().new_page()
    other.goto(link)
    other.wait_for_selector(f"#join-note:has-text('{REFUSED}')")
    join_as(other, "Pat")
    assert other.locator(", ".join(OWNER_CONTROLS)).count() == 0
    assert REFUSED in other.inner_text("#notice")
    save(other, tmp_path, "refused-open-mode.png")

    # A new link replaces the one shown; the first owner's page keeps its controls.
    owner.click("#make-owner-link")
    owner.wait_for_function("(old) => document.querySelector('#copy-owner-link-url')?.value !== old", arg=link)
    owner.reload()
    wait_connected(owner)
    assert owner.is_visible("#end-session")
