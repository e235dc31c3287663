"""Two people in one session, in a real browser: co-editing, cursors, language, rejoin, read-only, offline."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import ThreadedServer
from tests.web.pages import code, join, last_run, set_code, wait_code, wait_connected

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

TWO_SUM = """def two_sum(numbers, target):
    \"\"\"Indices of the two numbers that add up to target.\"\"\"
    seen = {}
    for index, value in enumerate(numbers):
        if target - value in seen:
            return [seen[target - value], index]
        seen[value] = index
    return None


print(two_sum([2, 7, 11, 15], 9))
"""


def test_two_people_type_at_once_and_see_each_other(
    web_server: ThreadedServer, new_context: Any, tmp_path: Path
) -> None:
    session_id = web_server.create_session("Two-sum warm-up")
    ada = join(new_context(), web_server.base_url, session_id, "Ada Lovelace")
    grace = join(new_context(), web_server.base_url, session_id, "Grace Hopper")
    wait_code(grace, "text.includes('Hello, world!')")

    ada.click(".cm-content")
    ada.keyboard.press("ControlOrMeta+Home")
    grace.click(".cm-content")
    grace.keyboard.press("ControlOrMeta+End")
    # Keystrokes interleaved with no waiting in between: each side edits before seeing the other's change.
    # (insert_text: the same input path as typing, without the completion popup swallowing Enter.)
    ada_text, grace_text = "# two people typing\n", "print('from grace')\n"
    for a, b in zip(ada_text, grace_text, strict=True):
        ada.keyboard.insert_text(a)
        grace.keyboard.insert_text(b)

    for page in (ada, grace):
        wait_code(page, "text.startsWith('# two people typing\\n') && text.includes(\"\\nprint('from grace')\\n\")")
    assert code(ada) == code(grace)
    assert code(ada).count("Hello, world!") == 1

    # Each sees the other's named caret, and both in the people list.
    ada.wait_for_selector(".cm-ySelectionInfo:has-text('Grace Hopper')")
    grace.wait_for_selector(".cm-ySelectionInfo:has-text('Ada Lovelace')")
    grace.wait_for_selector("#people li[data-online=true]:has-text('Ada Lovelace')")

    # A run by one shows in both output panels; this is also the screenshot of a session in use.
    set_code(ada, TWO_SUM)
    wait_code(grace, "text.includes('def two_sum')")
    grace.click(".cm-content")
    grace.keyboard.press("ControlOrMeta+End")
    grace.keyboard.insert_text("print(two_sum([3, 2, 4], 6))\n")
    wait_code(ada, "text.includes('[3, 2, 4]')")
    ada.keyboard.press("ControlOrMeta+Enter")
    for page in (ada, grace):
        page.wait_for_selector(".runs .run:not(.live) .stdout:has-text('[1, 2]')", timeout=60_000)
    ada.click(".cm-content >> text=seen[value] = index")
    ada.keyboard.press("End")
    grace.wait_for_selector(".cm-ySelectionInfo:has-text('Ada Lovelace')")
    shot = tmp_path / "two-people.png"
    grace.screenshot(path=str(shot))
    shutil.copyfile(shot, "/tmp/ccl-shot.png")
    assert shot.stat().st_size > 10_000


def test_language_switch_rehighlights_for_everyone(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Languages")
    one = join(new_context(), web_server.base_url, session_id, "One")
    two = join(new_context(), web_server.base_url, session_id, "Two")
    assert two.get_attribute(".cm-editor", "data-language") == "python"

    one.select_option("#language", "javascript")
    two.wait_for_selector(".cm-editor[data-language=javascript]")
    assert two.input_value("#language") == "javascript"
    # The untouched starter program is swapped for the new language's, and highlighted as JavaScript:
    # `console` is a variable name token there (no such token in the Python starter).
    wait_code(two, "text.includes('console.log')")
    two.wait_for_selector(".cm-line span:has-text('console')")

    two.select_option("#language", "cpp")
    one.wait_for_selector(".cm-editor[data-language=cpp]")
    wait_code(one, "text.includes('#include <iostream>')")


def test_reload_rejoins_as_the_same_participant(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Rejoin")
    page = join(new_context(), web_server.base_url, session_id, "Reloader")
    before = web_server.api("GET", f"/v1/sessions/{session_id}/participants")
    assert [p["name"] for p in before] == ["Reloader"]

    page.reload()
    wait_connected(page)
    assert page.locator("#join-name").count() == 0
    after = web_server.api("GET", f"/v1/sessions/{session_id}/participants")
    assert [p["id"] for p in after] == [p["id"] for p in before]
    page.wait_for_selector(f"#people li[data-participant-id='{before[0]['id']}']:has-text('(you)')")


def test_viewer_link_cannot_edit(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Watch only")
    editor_context = new_context()
    editor_context.grant_permissions(["clipboard-read", "clipboard-write"])
    editor = join(editor_context, web_server.base_url, session_id, "Editor")
    editor.click("#share")
    editor.click("#copy-viewer-link")
    editor.wait_for_selector("#copy-viewer-link:has-text('Copied')")
    viewer_link = editor.evaluate("navigator.clipboard.readText()")
    assert viewer_link == f"{web_server.base_url}/s/{session_id}?view=1"
    assert editor.input_value("#copy-editor-link-url") == f"{web_server.base_url}/s/{session_id}"
    editor.keyboard.press("Escape")
    assert editor.is_hidden("#share-menu")

    viewer = new_context().new_page()
    viewer.goto(viewer_link)
    viewer.fill("#join-name", "Watcher")
    viewer.click("#join-submit")
    wait_connected(viewer)
    viewer.wait_for_selector("#read-only")
    assert viewer.get_attribute(".cm-content", "contenteditable") == "false"
    assert viewer.is_disabled("#run")
    assert viewer.is_disabled("#language")
    wait_code(viewer, "text.includes('Hello, world!')")
    before = code(viewer)
    viewer.click(".cm-content")
    viewer.keyboard.type("viewer was here")
    viewer.keyboard.press("ControlOrMeta+Enter")
    assert code(viewer) == before

    # The editor's changes still reach the viewer live, and the viewer's attempt never reached the editor.
    editor.click(".cm-content")
    editor.keyboard.press("ControlOrMeta+End")
    editor.keyboard.type("# live for viewers")
    wait_code(viewer, "text.includes('# live for viewers')")
    assert "viewer was here" not in code(editor)
    participants = web_server.api("GET", f"/v1/sessions/{session_id}/participants")
    assert {p["name"]: p["role"] for p in participants} == {"Editor": "editor", "Watcher": "viewer"}


def test_offline_edits_merge_after_reconnect(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Flaky wifi")
    online = join(new_context(), web_server.base_url, session_id, "Online")
    offline_context = new_context()
    offline = join(offline_context, web_server.base_url, session_id, "Traveller")
    wait_code(offline, "text.includes('Hello, world!')")

    offline_context.set_offline(True)
    offline.wait_for_selector("#conn:not([data-state=connected])")
    offline.click(".cm-content")
    offline.keyboard.press("ControlOrMeta+End")
    offline.keyboard.type("# written on the train")
    offline.wait_for_selector("#conn[data-state=pending]")
    assert offline.inner_text("#conn") == "Offline · edits pending"

    online.click(".cm-content")
    online.keyboard.press("ControlOrMeta+Home")
    online.keyboard.type("# written at the office\n")
    assert "train" not in code(online)

    offline_context.set_offline(False)
    wait_connected(offline)
    for page in (online, offline):
        wait_code(page, "text.includes('# written on the train') && text.includes('# written at the office')")
    assert code(online) == code(offline)


def test_download_has_the_language_extension(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Export me", "typescript")
    page = join(new_context(accept_downloads=True), web_server.base_url, session_id, "Saver")
    wait_code(page, "text.includes('greeting')")
    set_code(page, "const x: number = 1;\n")
    with page.expect_download() as info:
        page.click("#download")
    download = info.value
    assert download.suggested_filename == "export-me.ts"
    assert Path(download.path()).read_text() == "const x: number = 1;\n"


def test_home_page_creates_a_session_and_lists_it(web_server: ThreadedServer, new_context: Any) -> None:
    page = new_context().new_page()
    page.goto(web_server.base_url + "/")
    page.fill("#title", "Mock interview")
    page.select_option("#new-language", "java")
    page.click("#create")
    page.wait_for_url("**/s/*")
    page.fill("#join-name", "Host")
    page.click("#join-submit")
    wait_connected(page)
    page.wait_for_selector(".cm-editor[data-language=java]")
    assert page.inner_text("#session-title") == "Mock interview"

    page.goto(web_server.base_url + "/")
    page.wait_for_selector("#recent a:has-text('Mock interview')")


def test_unknown_session_says_so(web_server: ThreadedServer, new_context: Any) -> None:
    page = new_context().new_page()
    page.goto(web_server.base_url + "/s/does-not-exist")
    page.wait_for_selector("h1:has-text('Session not found')")
    assert last_run(page).count() == 0
