"""Two people in one session, in a real browser: co-editing, cursors, language, rejoin, read-only, offline."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import ThreadedServer
from tests.web.pages import code, join, last_run, run, set_code, wait_code, wait_connected

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
    viewer_id = web_server.api("GET", f"/v1/sessions/{session_id}")["viewerId"]
    editor_context = new_context()
    editor_context.grant_permissions(["clipboard-read", "clipboard-write"])
    editor = join(editor_context, web_server.base_url, session_id, "Editor")
    editor.click("#share")
    editor.click("#copy-viewer-link")
    editor.wait_for_selector("#copy-viewer-link:has-text('Copied')")
    viewer_link = editor.evaluate("navigator.clipboard.readText()")
    # The read-only link is the viewer id's own page: nothing to delete from it to become an editor.
    assert viewer_link == f"{web_server.base_url}/v/{viewer_id}"
    assert session_id not in viewer_link
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

    # A reload rejoins as the same viewer, still without a join form.
    viewer.reload()
    wait_connected(viewer)
    assert viewer.locator("#join-name").count() == 0
    assert len(web_server.api("GET", f"/v1/sessions/{session_id}/participants")) == 2


# Where the selection is after Ctrl+A: inside the editor's text only, or anywhere else on the page.
_SELECTION_JS = """() => {
  const selection = getSelection();
  const content = document.querySelector('.cm-content');
  const inside = (node) => node !== null && content.contains(node);
  return {text: selection.toString(), inEditor: inside(selection.anchorNode) && inside(selection.focusNode)};
}"""


def test_the_viewer_page_never_learns_the_session_id(web_server: ThreadedServer, new_context: Any) -> None:
    """Everything a viewer's browser gets (the page, every response, every live frame, its storage) is free of
    the session id and the editor's secrets; the Input box and the editor are read-only; Ctrl+A selects the
    code, not the page."""
    created = web_server.api("POST", "/v1/sessions", {"title": "Secret pairing", "language": "javascript"})
    session_id, viewer_id = created["id"], created["viewerId"]
    editor_page = join(new_context(), web_server.base_url, session_id, "Editor")
    card = run(editor_page, 'console.log("ran by the editor")\n')
    assert "ran by the editor" in card.inner_text()
    editor_token = editor_page.evaluate(
        f"JSON.parse(localStorage.getItem('ccl.participant.{session_id}.editor')).token"
    )
    secrets = [session_id, editor_token, created["ownerKey"]]

    context = new_context()
    responses: list[Any] = []
    frames: list[str | bytes] = []
    sockets: list[str] = []
    context.on("response", lambda response: responses.append(response))

    def on_websocket(ws: Any) -> None:
        sockets.append(ws.url)
        ws.on("framereceived", lambda payload: frames.append(payload))
        ws.on("framesent", lambda payload: frames.append(payload))

    page = context.new_page()
    page.on("websocket", on_websocket)
    page.goto(f"{web_server.base_url}/v/{viewer_id}")
    page.fill("#join-name", "Watcher")
    page.click("#join-submit")
    wait_connected(page)
    wait_code(page, "text.includes('ran by the editor')")
    page.wait_for_selector(".runs .run:not(.live) .stdout:has-text('ran by the editor')")
    page.wait_for_selector("#people li[data-online=true]:has-text('Editor')")
    page.wait_for_selector("#people li:has-text('Watcher (you)') .tag:has-text('viewer')")
    assert page.inner_text("#session-title") == "Secret pairing"
    editor_page.click(".cm-content")
    editor_page.keyboard.press("ControlOrMeta+End")
    editor_page.keyboard.insert_text("// more\n")
    wait_code(page, "text.includes('// more')")

    # Read-only: the editor and the Input box take no typing, Run and the language cannot be used.
    before = code(page)
    assert page.get_attribute(".cm-content", "contenteditable") == "false"
    assert not page.is_editable("#stdin")
    page.click("#stdin")
    page.keyboard.type("typed by the viewer")
    assert page.input_value("#stdin") == ""
    page.click(".cm-content")
    page.keyboard.type("typed by the viewer")
    assert code(page) == before
    assert page.is_disabled("#run") and page.is_disabled("#language")

    # Ctrl+A selects the code, whether the editor or something else on the page was clicked last.
    for target in (".cm-content", "#people", ".output-panel h2"):
        page.click(target)
        page.keyboard.press("ControlOrMeta+a")
        selected = page.evaluate(_SELECTION_JS)
        assert selected["inEditor"], (target, selected)
        assert "ran by the editor" in selected["text"] and "People" not in selected["text"], (target, selected)

    # The Share menu offers the read-only link only.
    page.click("#share")
    assert page.input_value("#copy-viewer-link-url") == f"{web_server.base_url}/v/{viewer_id}"
    assert page.locator("#copy-editor-link-url").count() == 0

    seen: list[tuple[str, bytes]] = [
        ("url", page.url.encode()),
        ("html", page.content().encode()),
        ("title", page.title().encode()),
        ("localStorage", page.evaluate("JSON.stringify(Object.entries(localStorage))").encode()),
        ("sessionStorage", page.evaluate("JSON.stringify(Object.entries(sessionStorage))").encode()),
        ("cookies", repr(context.cookies()).encode()),
    ]
    seen += [("websocket url", url.encode()) for url in sockets]
    seen += [("frame", f if isinstance(f, bytes) else f.encode()) for f in frames]
    for response in responses:
        head = f"{response.status} {response.url}\n{response.all_headers()}".encode()
        seen.append((response.url, head))
        if not 300 <= response.status < 400:
            seen.append((response.url, response.body()))
    assert any(what == "frame" for what, _ in seen) and sockets
    assert any("/v1/views/" in what for what, _ in seen)
    for what, data in seen:
        for secret in secrets:
            assert secret.encode() not in data, f"{what} holds a secret"


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


def test_download_keeps_the_letters_of_any_script(web_server: ThreadedServer, new_context: Any) -> None:
    """Before: non-ASCII letters were dropped ("Café Übung" saved as caf-bung.py)."""
    session_id = web_server.create_session("Café Übung / 日本語", "python")
    page = join(new_context(accept_downloads=True), web_server.base_url, session_id, "Saver")
    with page.expect_download() as info:
        page.click("#download")
    assert info.value.suggested_filename == "café-übung-日本語.py"


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


def test_unknown_read_only_link_says_so(web_server: ThreadedServer, new_context: Any) -> None:
    page = new_context().new_page()
    page.goto(web_server.base_url + "/v/does-not-exist")
    page.wait_for_selector("h1:has-text('Session not found')")
    assert page.locator("#join-name").count() == 0
