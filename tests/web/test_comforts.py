"""Editor comforts: theme, font size, vim and emacs keys, Format per language, renaming the session in place.

Settings are per browser (localStorage), so each test opens its own browser profile. The formatters' first-use
load times are recorded (printed and saved as ``format-figures.json`` under the test's temp dir), not asserted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import ThreadedServer
from tests.web.pages import CODE, code, join, set_code, wait_code, wait_connected

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

# Loading a formatter or a keymap on first use fetches and compiles a chunk (and a wasm module): generous on a
# loaded machine.
FIRST_USE_MS = 60_000

# The mean of the red, green and blue channels of an element's background (0 black .. 255 white).
_LIGHTNESS = """(sel) => {
  const m = getComputedStyle(document.querySelector(sel)).backgroundColor.match(/\\d+(\\.\\d+)?/g).map(Number);
  return (m[0] + m[1] + m[2]) / 3;
}"""
DARK = "dark"
LIGHT = "light"


def lightness(page: Any, selector: str) -> float:
    value: float = page.evaluate(_LIGHTNESS, selector)
    return value


def wait_background(page: Any, selector: str, shade: str) -> None:
    """Wait until the element's background is dark (mean channel under 80) or light (over 200)."""
    test = "< 80" if shade == DARK else "> 200"
    page.wait_for_function(f"(sel) => ({_LIGHTNESS})(sel) {test}", arg=selector)


def open_settings(page: Any) -> None:
    if page.locator("#settings-menu").is_hidden():
        page.click("#settings")
    page.wait_for_selector("#settings-menu", state="visible")


def choose(page: Any, setting: str, value: str) -> None:
    open_settings(page)
    page.select_option(f"#setting-{setting}", value)


def code_font_size(page: Any) -> str:
    size: str = page.evaluate("getComputedStyle(document.querySelector('.cm-content')).fontSize")
    return size


def js_string(text: str) -> str:
    return json.dumps(text)


def test_theme_is_dark_by_default_switches_at_once_and_persists(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Themes")
    page = join(new_context(), web_server.base_url, session_id, "Ada")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert lightness(page, ".cm-editor") < 80
    assert lightness(page, "body") < 80

    choose(page, "theme", "light")
    # At once, without a reload: the editor and the whole page around it.
    wait_background(page, ".cm-editor", LIGHT)
    wait_background(page, "body", LIGHT)
    assert lightness(page, ".topbar") > 200

    page.reload()
    wait_connected(page)
    wait_background(page, ".cm-editor", LIGHT)
    assert lightness(page, "body") > 200
    open_settings(page)
    assert page.input_value("#setting-theme") == "light"
    # The start page follows the same choice.
    page.goto(web_server.base_url + "/")
    wait_background(page, "body", LIGHT)

    page.goto(f"{web_server.base_url}/s/{session_id}")
    wait_connected(page)
    choose(page, "theme", "dark")
    wait_background(page, ".cm-editor", DARK)
    wait_background(page, "body", DARK)


def test_theme_can_follow_the_system(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("System theme")
    page = join(new_context(color_scheme="light"), web_server.base_url, session_id, "Ada")
    # Dark by default, whatever the system says, until "follow the system" is chosen.
    assert lightness(page, ".cm-editor") < 80
    choose(page, "theme", "system")
    wait_background(page, ".cm-editor", LIGHT)
    wait_background(page, "body", LIGHT)
    # The system switching to dark switches the page at once.
    page.emulate_media(color_scheme="dark")
    wait_background(page, ".cm-editor", DARK)
    wait_background(page, "body", DARK)
    page.emulate_media(color_scheme="light")
    wait_background(page, ".cm-editor", LIGHT)


@pytest.mark.parametrize(("motion", "blink"), [("no-preference", "1.2s"), ("reduce", "0s")])
def test_the_caret_blinks_unless_the_system_asks_for_less_motion(
    web_server: ThreadedServer, new_context: Any, motion: str, blink: str
) -> None:
    session_id = web_server.create_session("Caret")
    page = join(new_context(reduced_motion=motion), web_server.base_url, session_id, "Ada")
    page.click(".cm-content")
    page.wait_for_selector(".cm-cursorLayer .cm-cursor-primary")
    assert page.eval_on_selector(".cm-cursorLayer", "(layer) => getComputedStyle(layer).animationDuration") == blink


def test_font_size_applies_at_once_and_persists(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Font size")
    page = join(new_context(), web_server.base_url, session_id, "Ada")
    assert code_font_size(page) == "14px"
    open_settings(page)
    page.click("#font-larger")
    page.click("#font-larger")
    page.wait_for_function("getComputedStyle(document.querySelector('.cm-content')).fontSize === '16px'")
    assert page.text_content("#setting-font-size") == "16px"

    page.reload()
    wait_connected(page)
    assert code_font_size(page) == "16px"
    # The keyboard, from the editor: Ctrl+- and Ctrl+=.
    page.click(CODE)
    page.keyboard.press("Control+-")
    page.keyboard.press("Control+-")
    page.keyboard.press("Control+-")
    page.wait_for_function("getComputedStyle(document.querySelector('.cm-content')).fontSize === '13px'")
    page.keyboard.press("Control+=")
    page.wait_for_function("getComputedStyle(document.querySelector('.cm-content')).fontSize === '14px'")
    # Bounded: the keys stop at the smallest size, where the button turns off.
    for _ in range(5):
        page.keyboard.press("Control+-")
    page.wait_for_function("getComputedStyle(document.querySelector('.cm-content')).fontSize === '11px'")
    open_settings(page)
    assert page.locator("#font-smaller").is_disabled()


def test_vim_keys(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Vim")
    page = join(new_context(), web_server.base_url, session_id, "Ada")
    set_code(page, "one\ntwo\nthree\n")
    choose(page, "keymap", "vim")
    page.wait_for_selector(".cm-editor[data-keymap=vim]", timeout=FIRST_USE_MS)
    page.click(".cm-line >> nth=0")
    # Normal mode: gg to the top, dd deletes the line; i, text, Escape inserts.
    for key in ("Escape", "g", "g", "d", "d"):
        page.keyboard.press(key)
    wait_code(page, "text === 'two\\nthree\\n'")
    page.keyboard.press("i")
    page.keyboard.type("zero ")
    page.keyboard.press("Escape")
    wait_code(page, "text === 'zero two\\nthree\\n'")
    # Normal mode again after Escape (the caret steps back onto the space): x deletes instead of typing.
    page.keyboard.press("x")
    wait_code(page, "text === 'zerotwo\\nthree\\n'")

    # The choice is remembered, and loads again after a reload.
    page.reload()
    wait_connected(page)
    page.wait_for_selector(".cm-editor[data-keymap=vim]", timeout=FIRST_USE_MS)


def test_emacs_keys(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Emacs")
    page = join(new_context(), web_server.base_url, session_id, "Ada")
    set_code(page, "alpha beta\n")
    choose(page, "keymap", "emacs")
    page.wait_for_selector(".cm-editor[data-keymap=emacs]", timeout=FIRST_USE_MS)
    page.click(".cm-line >> nth=0")
    page.keyboard.press("Control+a")
    page.keyboard.type("X")
    wait_code(page, "text === 'Xalpha beta\\n'")
    page.keyboard.press("Control+e")
    page.keyboard.type("Y")
    wait_code(page, "text === 'Xalpha betaY\\n'")

    # Back to the standard keys: Ctrl+A selects everything again.
    choose(page, "keymap", "default")
    page.wait_for_selector(".cm-editor[data-keymap=default]")
    page.click(".cm-line >> nth=0")
    page.keyboard.press("Control+a")
    page.keyboard.type("Z")
    wait_code(page, "text === 'Z'")


FORMAT_CASES = {
    "python": (
        "x=[1,2,\n3]\ndef  f(a,b):\n  return a+b\n",
        "x = [1, 2, 3]\n\n\ndef f(a, b):\n    return a + b\n",
        "def f(:\n    pass\n",
    ),
    "javascript": (
        "const a={b:1,c:[1,2]};function f(x){return x*2}\n",
        "const a = { b: 1, c: [1, 2] };\nfunction f(x) {\n  return x * 2;\n}\n",
        "const a = (;\n",
    ),
    "typescript": (
        "const a:number=1;interface P{x:number;y?:string}\n",
        "const a: number = 1;\ninterface P {\n  x: number;\n  y?: string;\n}\n",
        "let x: = 1;\n",
    ),
    "java": (
        'public class Main{public static void main(String[] args){System.out.println("hi");}}\n',
        "public class Main {\n    public static void main(String[] args) {\n"
        '        System.out.println("hi");\n    }\n}\n',
        "public class Main { void f( { }\n",
    ),
    "cpp": (
        '#include <iostream>\nint main(){std::cout<<"hi"<<std::endl;return 0;}\n',
        '#include <iostream>\nint main() {\n    std::cout << "hi" << std::endl;\n    return 0;\n}\n',
        "int main() { return 0;\n",
    ),
}

_FIGURES: dict[str, Any] = {}


@pytest.mark.parametrize("language", list(FORMAT_CASES))
def test_format(web_server: ThreadedServer, new_context: Any, language: str, tmp_path: Path) -> None:
    messy, formatted, broken = FORMAT_CASES[language]
    session_id = web_server.create_session(f"Format {language}", language)
    page = join(new_context(), web_server.base_url, session_id, "Ada")
    page.wait_for_selector(f".cm-editor[data-language={language}]")
    set_code(page, messy)
    wait_code(page, f"text === {js_string(messy)}")
    # What the formatter costs to fetch on first use (nothing of it is loaded before).
    loaded_before = page.evaluate("performance.getEntriesByType('resource').map((r) => r.name)")
    assert not [name for name in loaded_before if "ruff" in name or "clang" in name or "prettier" in name]
    page.click("#format")
    # The first use fetches and compiles the formatter: allow for a loaded machine.
    wait_code(page, f"text === {js_string(formatted)}", timeout=FIRST_USE_MS)
    load_ms = page.evaluate(f"performance.getEntriesByName('ccl-format-load-{language}')[0].duration")
    fetched = page.evaluate(
        """(before) => performance.getEntriesByType('resource').filter((r) => !before.includes(r.name))
             .map((r) => [r.name.split('/').pop(), r.encodedBodySize, r.transferSize])""",
        loaded_before,
    )
    _FIGURES[language] = {"load_ms": round(load_ms), "fetched": fetched}
    (tmp_path / "format-figures.json").write_text(json.dumps(_FIGURES, indent=2))
    print(f"\nformat figures {language}:", json.dumps(_FIGURES[language]))
    # The wasm came from our own server.
    if language in ("python", "java", "cpp"):
        assert any(name.endswith(".wasm") for name, _size, _wire in fetched), fetched

    # A syntax error: a short message, and the code stays exactly as it was.
    set_code(page, broken)
    wait_code(page, f"text === {js_string(broken)}")
    page.keyboard.press("Shift+Alt+F")
    page.wait_for_selector("#notice:has-text('syntax error')")
    assert "line 1" in (page.text_content("#notice") or "")
    assert code(page) == broken

    # The keyboard shortcut formats too.
    set_code(page, messy)
    wait_code(page, f"text === {js_string(messy)}")
    page.keyboard.press("Shift+Alt+F")
    wait_code(page, f"text === {js_string(formatted)}")


def test_format_is_a_minimal_change_that_keeps_other_cursors(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Format together")
    ada = join(new_context(), web_server.base_url, session_id, "Ada")
    grace = join(new_context(), web_server.base_url, session_id, "Grace")
    set_code(ada, "def f(a,b):\n  return a+b\n\n\nprint(f(1, 2))\nvalue = 3\n")
    wait_code(grace, "text.endsWith('value = 3\\n')")
    # Grace's caret sits in a line that formatting does not touch.
    grace.click(".cm-line:has-text('print(f(1, 2))')")
    grace.keyboard.press("End")
    ada.click("#format")
    wait_code(ada, "text.startsWith('def f(a, b):\\n    return a + b\\n')", timeout=FIRST_USE_MS)
    wait_code(grace, "text.startsWith('def f(a, b):\\n    return a + b\\n')")
    grace.keyboard.type("  # three")
    wait_code(ada, "text.includes('print(f(1, 2))  # three\\nvalue = 3')")


def test_two_people_rename_the_session_in_place(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Old name")
    ada = join(new_context(), web_server.base_url, session_id, "Ada")
    grace = join(new_context(), web_server.base_url, session_id, "Grace")

    ada.click("#session-title")
    ada.fill("#title-input", "  Interview with Grace  ")
    ada.keyboard.press("Enter")
    ada.wait_for_selector("#session-title:text-is('Interview with Grace')")
    grace.wait_for_selector("#session-title:text-is('Interview with Grace')")
    grace.wait_for_function("document.title.startsWith('Interview with Grace')")

    # Escape gives up the edit; an empty title is not a title.
    grace.click("#rename-title")
    grace.fill("#title-input", "Never saved")
    grace.keyboard.press("Escape")
    grace.wait_for_selector("#session-title:text-is('Interview with Grace')")
    grace.click("#session-title")
    grace.fill("#title-input", "   ")
    grace.keyboard.press("Enter")
    grace.wait_for_selector("#session-title:text-is('Interview with Grace')")
    # At most 200 characters fit in the field.
    grace.click("#session-title")
    grace.fill("#title-input", "x" * 250)
    assert len(grace.input_value("#title-input")) == 200
    grace.keyboard.press("Escape")

    # Someone joining later gets the new title from the shared document.
    late = join(new_context(), web_server.base_url, session_id, "Late")
    late.wait_for_selector("#session-title:text-is('Interview with Grace')")


def test_a_viewer_can_neither_rename_nor_format(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Watched")
    ada = join(new_context(), web_server.base_url, session_id, "Ada")
    viewer = join(new_context(), web_server.base_url, session_id, "Viewer", view=True)
    # Editors have both...
    assert ada.locator("#format").is_visible()
    assert ada.locator("#rename-title").is_visible()
    set_code(ada, "x=1\n")
    wait_code(viewer, "text === 'x=1\\n'")
    # ...viewers neither: no buttons, the title does not open for editing, the shortcut does nothing.
    assert viewer.locator("#format").count() == 0
    assert viewer.locator("#rename-title").count() == 0
    viewer.click("#session-title")
    assert viewer.locator("#title-input").count() == 0
    viewer.click(CODE)
    viewer.keyboard.press("Shift+Alt+F")
    # Ada formatting afterwards proves the formatter works on this pad; the viewer's copy follows hers only.
    ada.click("#format")
    wait_code(viewer, "text === 'x = 1\\n'", timeout=FIRST_USE_MS)
    assert viewer.text_content("#session-title") == "Watched"
