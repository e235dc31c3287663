"""Playback and private notes in a real browser: three people write, run and switch the language; the owner plays
the history back (the timeline, seeking, dragging, stepping, playing at 16x), restores an old version that everyone
gets, and goes back to live; the owner's notes follow their other tab and never reach a participant's page."""

from __future__ import annotations

import importlib.util
import json
import shutil
import statistics
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from codeconnect.config import Settings
from tests.web.conftest import ThreadedServer
from tests.web.pages import join, run, wait_code, wait_connected
from tests.web.test_owner_controls import create_as_owner, type_at_end

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

@pytest.fixture(scope="module")
def web_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    db = tmp_path_factory.mktemp("web-db") / "codeconnect.db"
    # A notes long poll open when the server stops holds it up for this long.
    return Settings(database_url=f"sqlite+aiosqlite:///{db}", notes_wait_seconds=5)


BENCH = Path(__file__).resolve().parents[2] / "bench"

# The playback editor's text as rendered (the live editor is hidden meanwhile, but still in the page).
_PLAYBACK_TEXT = """(() => [...document.querySelectorAll('#playback .cm-content .cm-line')]
  .map((line) => line.textContent).join('\\n'))()"""


def owner_key(page: Any, session_id: str) -> str:
    recent = json.loads(page.evaluate("localStorage.getItem('ccl.recent')"))
    key: str = next(s["ownerKey"] for s in recent if s["id"] == session_id)
    return key


def get(server: ThreadedServer, path: str, key: str) -> Any:
    request = urllib.request.Request(server.base_url + path, headers={"X-Owner-Key": key})
    with urllib.request.urlopen(request, timeout=15) as response:
        return json.load(response)


def playback_text(page: Any) -> str:
    text: str = page.evaluate(_PLAYBACK_TEXT)
    return text


def shown_index(page: Any) -> int:
    return int(page.get_attribute("#playback-timeline", "aria-valuenow"))


def wait_shown(page: Any, index: int) -> None:
    page.wait_for_selector(f"#playback[data-index='{index}']")


def click_timeline(page: Any, fraction: float) -> int:
    box = page.locator("#playback-timeline").bounding_box()
    page.mouse.click(box["x"] + 1 + (box["width"] - 2) * fraction, box["y"] + box["height"] / 2)
    return shown_index(page)


def same_text(page: Any, expected: str) -> None:
    """The playback editor shows ``expected`` (CodeMirror renders a final empty line for a final newline)."""
    page.wait_for_function(f"() => {_PLAYBACK_TEXT} === {json.dumps(expected)}")


def test_the_owner_plays_back_three_writers_and_restores(
    web_server: ThreadedServer, new_context: Any, tmp_path: Path
) -> None:
    owner, session_id = create_as_owner(new_context(), web_server.base_url, "Interview", "Olive")
    pat = join(new_context(), web_server.base_url, session_id, "Pat")
    quinn = join(new_context(), web_server.base_url, session_id, "Quinn")
    assert pat.locator("#history").is_hidden()  # participants do not read the history on this server
    key = owner_key(owner, session_id)

    for page, line in [(pat, "a = 1"), (quinn, "b = 2"), (owner, "c = 3"), (pat, "print(a + b + c)")]:
        type_at_end(page, line + "\n")
        wait_code(owner, f"text.includes({line!r})")
        wait_code(pat, f"text.includes({line!r})")
        wait_code(quinn, f"text.includes({line!r})")
    run(owner, 'console.log("six")', language="javascript")  # a language switch, the new code and a run
    wait_code(quinn, "text.includes('six')")
    type_at_end(quinn, "// done\n")
    wait_code(owner, "text.includes('// done')")

    timeline = get(web_server, f"/v1/sessions/{session_id}/history", key)
    total = timeline["total"]
    kinds = [c["kind"] for c in timeline["changes"]]
    assert "run" in kinds and "language" in kinds
    authors = {c["author"] for c in timeline["changes"]}
    assert len(authors - {None}) == 3

    def at(index: int) -> dict[str, Any]:
        point: dict[str, Any] = get(web_server, f"/v1/sessions/{session_id}/history/at?index={index}", key)
        return point

    # History opens on the last change, with the keyboard on the timeline.
    owner.click("#history")
    wait_shown(owner, total - 1)
    assert owner.get_attribute("#history", "aria-pressed") == "true"
    assert owner.evaluate("document.activeElement.id") == "playback-timeline"
    assert owner.get_attribute("#playback-timeline", "aria-valuemax") == str(total - 1)
    assert owner.get_attribute("#playback", "data-source") == "local"  # the owner plays from the export
    assert owner.is_hidden("#runs") and owner.is_visible("#playback-runs")
    same_text(owner, at(total - 1)["code"])
    legend = owner.text_content("#playback-authors") or ""
    assert all(name in legend for name in ("Olive", "Pat", "Quinn", "run", "language"))
    valuetext = owner.get_attribute("#playback-timeline", "aria-valuetext") or ""
    assert "Quinn typed" in valuetext and f"change {total} of {total}" in valuetext

    # Seeking: a click anywhere on the bar shows the text the server has for that change, its authors in colour.
    seen = set()
    for fraction in (0.05, 0.3, 0.55, 0.8, 1.0):
        index = click_timeline(owner, fraction)
        seen.add(index)
        point = at(index)
        same_text(owner, point["code"])
        assert owner.locator("#playback-runs .run").count() == len(point["runs"])
    assert len(seen) >= 3
    colours = owner.eval_on_selector_all(
        "#playback .cm-content [style*='background-color']", "(spans) => spans.length"
    )
    assert colours > 0

    # Dragging moves through the changes and stops where the pointer lets go.
    box = owner.locator("#playback-timeline").bounding_box()
    y = box["y"] + box["height"] / 2
    owner.mouse.move(box["x"] + box["width"] * 0.9, y)
    owner.mouse.down()
    owner.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    owner.mouse.move(box["x"] + box["width"] * 0.35, y, steps=5)
    owner.mouse.up()
    dragged = shown_index(owner)
    same_text(owner, at(dragged)["code"])

    # Stepping by one change, with the arrows and the buttons.
    owner.focus("#playback-timeline")
    owner.keyboard.press("Home")
    wait_shown(owner, 0)
    same_text(owner, at(0)["code"])
    owner.keyboard.press("ArrowRight")
    wait_shown(owner, 1)
    same_text(owner, at(1)["code"])
    owner.click("#playback-next")
    wait_shown(owner, 2)
    owner.keyboard.press("ArrowLeft")
    wait_shown(owner, 1)
    assert owner.is_enabled("#playback-prev")

    # Mid-way, for the eye: the timeline and each author's colour.
    middle = next(i for i in range(total) if "b = 2" in at(i)["code"] and "c = 3" not in at(i)["code"])
    for _ in range(middle - 1):
        owner.keyboard.press("ArrowRight")
    wait_shown(owner, middle)
    shot = tmp_path / "playback.png"
    owner.screenshot(path=str(shot))
    shutil.copyfile(shot, "/tmp/ccl-playback.png")

    # Playing at 16x from the start reaches the end, and Space pauses and plays.
    owner.select_option("#playback-speed", "16")
    owner.focus("#playback-timeline")
    owner.keyboard.press("Home")
    owner.keyboard.press(" ")
    owner.wait_for_selector("#playback[data-playing='true']")
    owner.wait_for_selector(f"#playback[data-playing='false'][data-index='{total - 1}']", timeout=60_000)
    same_text(owner, at(total - 1)["code"])

    # Restore: the code as it was after Pat's first line, for everyone, then back to live.
    target = next(i for i in range(total) if "a = 1" in at(i)["code"] and "b = 2" not in at(i)["code"])
    old = at(target)["code"]
    owner.keyboard.press("Home")
    for _ in range(target):
        owner.keyboard.press("ArrowRight")
    wait_shown(owner, target)
    owner.click("#playback-restore")  # the confirmation is accepted
    owner.wait_for_selector("#playback", state="detached")
    owner.wait_for_function("() => document.activeElement?.id === 'history'")
    assert owner.is_visible("#runs")
    wait_code(pat, f"text === {json.dumps(old)}")
    wait_code(owner, f"text === {json.dumps(old)}")
    assert web_server.api("GET", f"/v1/sessions/{session_id}")["code"] == old

    # Escape goes back to live from anywhere in playback.
    owner.click("#history")
    owner.wait_for_selector("#playback[data-index]")
    owner.click("#playback-prev")
    owner.keyboard.press("Escape")
    owner.wait_for_selector("#playback", state="detached")
    owner.wait_for_function("() => document.activeElement?.id === 'history'")
    assert owner.is_visible(".cm-editor") and owner.get_attribute("#history", "aria-pressed") == "false"


def test_private_notes_follow_the_owner_and_never_reach_a_participant(
    web_server: ThreadedServer, new_context: Any, tmp_path: Path
) -> None:
    owner_context = new_context()
    owner, session_id = create_as_owner(owner_context, web_server.base_url, "Notes", "Olive")
    # The participant's page is watched from its first request: nothing it receives may carry the notes.
    pat_context = new_context()
    received: list[str] = []

    def on_response(response: Any) -> None:
        received.append(response.url)
        try:
            received.append(response.text())
        except Exception:  # a redirect or an aborted request: no body
            pass

    def on_socket(socket: Any) -> None:
        socket.on(
            "framereceived",
            lambda payload: received.append(payload if isinstance(payload, str) else payload.decode("latin-1")),
        )

    pat_context.on("response", on_response)
    pat_context.on("websocket", on_socket)
    pat = join(pat_context, web_server.base_url, session_id, "Pat")

    owner.wait_for_selector("#notes:enabled")
    second = owner_context.new_page()  # the owner's other tab (same browser: same key, same participant)
    second.goto(f"{web_server.base_url}/s/{session_id}")
    wait_connected(second)
    second.wait_for_selector("#notes:enabled")

    secret = "Candidate hesitated on recursion; strong on tests"
    owner.click("#notes")
    owner.keyboard.type(secret)
    owner.wait_for_selector("#notes-state:text('Saved')")
    second.wait_for_function(f"() => document.querySelector('#notes').value === {json.dumps(secret)}")
    # And back: the second tab's words reach the first.
    second.click("#notes")
    second.keyboard.press("End")
    second.keyboard.type(" / follow-up")
    owner.wait_for_function("() => document.querySelector('#notes').value.endsWith(' / follow-up')")
    stored = get(web_server, f"/v1/sessions/{session_id}/notes", owner_key(owner, session_id))
    assert stored["text"] == secret + " / follow-up"

    # The notes are beside playback too.
    owner.click("#history")
    owner.wait_for_selector("#playback[data-index]")
    assert owner.is_visible("#notes-panel")
    shot = tmp_path / "notes.png"
    owner.screenshot(path=str(shot))
    shutil.copyfile(shot, "/tmp/ccl-notes.png")
    owner.keyboard.press("Escape")

    # The participant's page: no panel, no request for the notes, and not a word of them in anything it received.
    type_at_end(pat, "x = 1\n")
    wait_code(owner, "text.includes('x = 1')")
    pat.reload()
    wait_connected(pat)
    assert pat.locator("#notes-panel, #notes").count() == 0
    assert not any("/notes" in item for item in received if item.startswith("http"))
    assert not any("hesitated" in item or "follow-up" in item for item in received)
    assert len(received) > 10


def _load_bench(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_playing_thousands_of_changes_at_16x_measures_its_frames(web_server: ThreadedServer, new_context: Any) -> None:
    recorded = _load_bench("recorded_session")
    frames = _load_bench("playback_frames")
    created = web_server.api("POST", "/v1/sessions/import", recorded.session_export(3000, 150.0))
    page = new_context().new_page()
    frames.open_as_owner(page, web_server.base_url, created["id"], created["ownerKey"])
    intervals = frames.play_and_measure(page, speed=16, seconds=None)
    assert page.get_attribute("#playback", "data-index") == "2999"
    assert len(intervals) > 30
    p50 = statistics.median(intervals)
    p95 = statistics.quantiles(intervals, n=20)[-1]
    print(f"\nplayback at 16x, 3000 changes: {len(intervals)} frames, p50 {p50:.1f} ms, p95 {p95:.1f} ms")
