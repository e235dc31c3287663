"""The session page at every size and for every way of using it: phones to 4K and 200 % zoom without overlapping or
unreachable panels, axe-core's serious and critical rules, the keyboard (focus, Escape, the shortcut list) and
what screen readers are told (connection state, the end of a run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import ThreadedServer, require
from tests.web.pages import join, run, wait_connected

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"

# (width, height) in CSS pixels. 683x400 is a 1366x800 screen at 200 % zoom; 360x640 the smallest phone we serve.
VIEWPORTS = [(360, 640), (375, 812), (683, 400), (1280, 560), (1366, 768), (3840, 2160)]

PROGRAM = 'console.log("hello");\nconsole.log("world");\n'

# Everyone who joined is listed, online or not: enough of them that the list is taller than a short window's side
# column.
EXTRA_PEOPLE = 12

_PANELS = [".topbar", ".editor-pane", ".output-panel", ".stdin-panel", ".people-panel"]
_HEADINGS = [".output-panel h2", ".stdin-panel h2", ".people-panel h2"]

_BOXES_JS = """(selectors) => selectors.map((s) => {
  const r = document.querySelector(s).getBoundingClientRect();
  return {s, x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height};
})"""

# Scroll the element into view (whatever scrolls: the page or a column) and say whether its middle is on screen
# and not covered or clipped: the element the browser finds at that point is the element or inside it.
_REACHABLE_JS = """(selector) => {
  const el = document.querySelector(selector);
  if (!el) return `${selector}: missing`;
  el.scrollIntoView({block: "center", inline: "nearest"});
  const r = el.getBoundingClientRect();
  if (r.width < 1 || r.height < 1) return `${selector}: ${r.width}x${r.height}`;
  const x = Math.min(Math.max(r.left + Math.min(r.width / 2, 40), 0), innerWidth - 1);
  const y = Math.min(Math.max(r.top + r.height / 2, 0), innerHeight - 1);
  const hit = document.elementFromPoint(x, y);
  const inView = r.top >= -1 && r.bottom <= innerHeight + 1 || r.height > innerHeight && r.top <= 0;
  return inView && hit && (el === hit || el.contains(hit)) ? "" :
    `${selector}: at ${Math.round(r.left)},${Math.round(r.top)} ${Math.round(r.width)}x${Math.round(r.height)} ` +
    `in ${innerWidth}x${innerHeight}, point hits ${hit ? hit.outerHTML.slice(0, 80) : "nothing"}`;
}"""

_REACHABLE = [".cm-editor", "#run", ".runs .run:last-child", "#stdin", "#people li:last-child"]


def _overlap(a: dict[str, float], b: dict[str, float]) -> float:
    w = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
    h = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
    return max(w, 0) * max(h, 0)


def _session_with_output(web_server: ThreadedServer, new_context: Any, **context: Any) -> tuple[Any, Any, str]:
    """Ada and Grace in a session with a finished run in the output and a long people list; returns both pages
    and the session id."""
    session_id = web_server.create_session("Layout", "javascript")
    for i in range(EXTRA_PEOPLE):
        web_server.api("POST", f"/v1/sessions/{session_id}/participants", {"name": f"Guest {i}"})
    ada = join(new_context(**context), web_server.base_url, session_id, "Ada")
    grace = join(new_context(**context), web_server.base_url, session_id, "Grace")
    run(ada, PROGRAM)
    ada.wait_for_selector(f"#people li >> nth={EXTRA_PEOPLE + 1}")
    return ada, grace, session_id


def test_panels_never_overlap_and_each_is_reachable(web_server: ThreadedServer, new_context: Any) -> None:
    ada, grace, _ = _session_with_output(web_server, new_context)
    problems: list[str] = []
    for width, height in VIEWPORTS:
        ada.set_viewport_size({"width": width, "height": height})
        ada.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
        # Back to the top, the page and every column (the last size scrolled them to reach the panels).
        ada.evaluate("() => { scrollTo(0, 0); for (const e of document.querySelectorAll('*')) e.scrollTop = 0; }")
        size = f"{width}x{height}"
        boxes = ada.evaluate(_BOXES_JS, _PANELS + _HEADINGS)
        panels, headings = boxes[: len(_PANELS)], boxes[len(_PANELS) :]
        for group in (panels, headings):
            for i, a in enumerate(group):
                for b in group[i + 1 :]:
                    if _overlap(a, b) > 1:
                        problems.append(f"{size}: {a['s']} {a} overlaps {b['s']} {b}")
        for box in panels[1:]:
            # A panel squeezed under its own heading (one pixel tall, as once at 683x400) is not usable.
            if box["h"] < 80:
                problems.append(f"{size}: {box['s']} is only {box['h']:.0f} px tall")
        if ada.evaluate("() => document.scrollingElement.scrollWidth > innerWidth + 1"):
            problems.append(f"{size}: the page scrolls sideways")
        for selector in _REACHABLE:
            why = ada.evaluate(_REACHABLE_JS, selector)
            if why:
                problems.append(f"{size}: {why}")
    assert not problems, "\n".join(problems)
    grace.close()


def _axe(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document)).violations
          .filter((v) => v.impact === "serious" || v.impact === "critical")
          .map((v) => ({id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" "))}))"""
    )
    return [f"{v['impact']} {v['id']}: {v['nodes']}" for v in found]


def test_axe_finds_nothing_serious(web_server: ThreadedServer, new_context: Any) -> None:
    require(AXE.is_file(), "axe-core is not installed (npm ci in web/, which scripts/build-web runs)")
    # The page's CSP allows no inline script, and axe is injected as one.
    context = new_context(bypass_csp=True)
    page = context.new_page()
    report: dict[str, list[str]] = {}

    page.goto(web_server.base_url + "/")
    page.wait_for_selector("#create")
    report["home"] = _axe(page)

    session_id = web_server.create_session("Axe", "python")
    # Someone who joined and left: the people list shows them as away.
    web_server.api("POST", f"/v1/sessions/{session_id}/participants", {"name": "Grace"})
    page.goto(f"{web_server.base_url}/s/{session_id}")
    page.wait_for_selector("#join-name")
    report["join form"] = _axe(page)

    page.fill("#join-name", "Ada")
    page.click("#join-submit")
    wait_connected(page)
    run(page, PROGRAM, language="javascript")
    report["editor page"] = _axe(page)

    page.click("#share")
    page.wait_for_selector("#share-menu:not([hidden])")
    report["share menu"] = _axe(page)
    page.keyboard.press("Escape")

    viewer_id = web_server.api("GET", f"/v1/sessions/{session_id}")["viewerId"]
    viewer = new_context(bypass_csp=True).new_page()
    viewer.goto(f"{web_server.base_url}/v/{viewer_id}")
    viewer.fill("#join-name", "Vic")
    viewer.click("#join-submit")
    wait_connected(viewer)
    viewer.wait_for_selector(".runs .run")
    report["viewer page"] = _axe(viewer)
    assert not any(report.values()), report

    page.click("#shortcuts")
    page.wait_for_selector("#shortcuts-dialog[open]")
    assert not _axe(page)


def test_keyboard_reaches_every_control_with_visible_focus(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Keys", "javascript")
    page = join(new_context(), web_server.base_url, session_id, "Ada")
    page.wait_for_selector("#run:enabled")
    page.evaluate("() => document.activeElement.blur()")
    reached: dict[str, dict[str, str]] = {}
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => { const e = document.activeElement; const s = getComputedStyle(e);
              return {key: e.id || e.className, outline: s.outlineStyle, width: s.outlineWidth,
                      editor: e.classList.contains("cm-content") ? "yes" : ""}; }"""
        )
        reached.setdefault(focused["key"], focused)
        if focused["editor"]:
            # Tab indents in the editor; Escape first makes the next Tab leave it.
            page.keyboard.press("Escape")
    for control in ("language", "run", "share", "download", "shortcuts", "stdin", "runs", "cm-content"):
        assert control in reached, (control, sorted(reached))
    for control in ("run", "share", "shortcuts", "stdin", "language"):
        style = reached[control]
        assert style["outline"] == "solid" and float(style["width"].removesuffix("px")) >= 2, (control, style)


def test_escape_closes_the_share_menu_and_focus_returns_to_share(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Share", "javascript")
    page = join(new_context(), web_server.base_url, session_id, "Ada")
    page.focus("#share")
    page.keyboard.press("Enter")
    page.wait_for_selector("#share-menu:not([hidden])")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.getElementById('share-menu').contains(document.activeElement)")
    page.keyboard.press("Escape")
    page.wait_for_selector("#share-menu[hidden]", state="attached")
    assert page.evaluate("() => document.activeElement.id") == "share"
    assert page.get_attribute("#share", "aria-expanded") == "false"


def test_question_mark_opens_the_shortcut_list(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Help", "javascript")
    page = join(new_context(), web_server.base_url, session_id, "Ada")

    # In the editor "?" is just text.
    page.click(".cm-content")
    page.keyboard.press("ControlOrMeta+End")
    page.keyboard.type("?")
    page.wait_for_function("() => document.querySelector('.cm-content').textContent.includes('?')")
    assert not page.evaluate("() => !!document.querySelector('#shortcuts-dialog[open]')")

    # Elsewhere it opens the list, which names the real shortcuts and keeps the focus until Escape.
    page.focus("#download")
    page.keyboard.press("?")
    dialog = page.wait_for_selector("#shortcuts-dialog[open]")
    text = dialog.inner_text()
    for expected in ("Keyboard shortcuts", "Run the code", "Enter", "Select all the code", "Find", "Escape"):
        assert expected in text, (expected, text)
    for _ in range(6):
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.getElementById('shortcuts-dialog').contains(document.activeElement)")
    page.keyboard.press("Escape")
    page.wait_for_selector("#shortcuts-dialog", state="hidden")
    assert page.evaluate("() => document.activeElement.id") == "download"

    # The visible control opens it too, and the focus returns to it.
    page.focus("#shortcuts")
    assert page.get_attribute("#shortcuts", "aria-label") == "Keyboard shortcuts"
    page.keyboard.press("Enter")
    page.wait_for_selector("#shortcuts-dialog[open]")
    page.keyboard.press("Escape")
    page.wait_for_selector("#shortcuts-dialog", state="hidden")
    assert page.evaluate("() => document.activeElement.id") == "shortcuts"


def test_connection_and_run_results_are_announced(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Announce", "javascript")
    ada = join(new_context(), web_server.base_url, session_id, "Ada")
    run(ada, PROGRAM)
    ada.wait_for_function(
        "() => document.getElementById('run-announcer').textContent === 'Run finished: ok, exit 0 (Ada, JavaScript)'"
    )
    grace = join(new_context(), web_server.base_url, session_id, "Grace")
    grace.wait_for_selector(".runs .run")
    for page in (ada, grace):
        conn = page.locator("#conn")
        assert conn.get_attribute("role") == "status" or conn.get_attribute("aria-live") == "polite"
        assert "Connected" in conn.inner_text()
        announcer = page.locator("#run-announcer")
        assert announcer.get_attribute("role") == "status" or announcer.get_attribute("aria-live") == "polite"
    # Runs from before the page opened are not news.
    assert grace.inner_text("#run-announcer") == ""
    # The output list itself is not a live region: each update would read every run out again.
    assert ada.get_attribute(".runs", "aria-live") in (None, "off")

    run(ada, 'throw new Error("boom");\n')
    grace.wait_for_function(
        "() => document.getElementById('run-announcer').textContent.startsWith('Run finished: error, exit 1 (Ada')"
    )


def test_viewer_input_is_read_only_and_select_all_stays_in_the_code(
    web_server: ThreadedServer, new_context: Any
) -> None:
    session_id = web_server.create_session("Watch", "javascript")
    editor = join(new_context(), web_server.base_url, session_id, "Ada")
    run(editor, PROGRAM)
    viewer_id = web_server.api("GET", f"/v1/sessions/{session_id}")["viewerId"]
    viewer = new_context().new_page()
    viewer.goto(f"{web_server.base_url}/v/{viewer_id}")
    viewer.fill("#join-name", "Vic")
    viewer.click("#join-submit")
    wait_connected(viewer)
    viewer.wait_for_selector(".runs .run")

    assert viewer.get_attribute("#stdin", "readonly") is not None
    viewer.click("#stdin")
    viewer.keyboard.type("typed by the viewer")
    assert viewer.input_value("#stdin") == ""

    for target in ("#people", ".output-panel h2", ".runs .run"):
        viewer.click(target)
        viewer.keyboard.press("ControlOrMeta+a")
        selected = viewer.evaluate(
            """() => { const s = getSelection(); const content = document.querySelector('.cm-content');
              const inside = (node) => node !== null && content.contains(node);
              return {text: s.toString(), inEditor: inside(s.anchorNode) && inside(s.focusNode)}; }"""
        )
        assert selected["inEditor"] and "hello" in selected["text"], (target, selected)
        assert "People" not in selected["text"] and "Output" not in selected["text"], (target, selected)
