"""Actions on the page, named for what a person does, so the tests read like the feature list."""

from __future__ import annotations

from typing import Any

CODE = ".cm-content"


def join(context: Any, base_url: str, session_id: str, name: str, *, view: bool = False) -> Any:
    """Open the session link in a new tab of ``context``, enter ``name`` and wait until the editor is live."""
    page = context.new_page()
    page.goto(f"{base_url}/s/{session_id}{'?view=1' if view else ''}")
    page.fill("#join-name", name)
    page.click("#join-submit")
    wait_connected(page)
    return page


def wait_connected(page: Any) -> None:
    page.wait_for_selector("body[data-ready]")
    page.wait_for_selector("#conn[data-state=connected]")


# The editor's text as rendered, without the collaborators' caret widgets (which carry their names).
_TEXT_JS = """(() => [...document.querySelectorAll('.cm-content .cm-line')].map((line) => {
  const copy = line.cloneNode(true);
  copy.querySelectorAll('.cm-ySelectionCaret, .cm-widgetBuffer').forEach((w) => w.remove());
  return copy.textContent.replace(/\u2060/g, '');
}).join('\\n'))()"""


def code(page: Any) -> str:
    text: str = page.evaluate(_TEXT_JS)
    return text


def set_code(page: Any, text: str) -> None:
    """Replace the whole program, as a person would: select all and type."""
    page.click(CODE)
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def wait_code(page: Any, predicate_js: str, timeout: float = 15_000) -> None:
    """Wait until the editor's text satisfies ``predicate_js`` (a JS expression over ``text``)."""
    page.wait_for_function(f"() => {{ const text = {_TEXT_JS}; return {predicate_js}; }}", timeout=timeout)


def run_cards(page: Any) -> Any:
    return page.locator(".runs .run:not(.live)")


def last_run(page: Any) -> Any:
    return run_cards(page).last


def stream(card: Any, name: str) -> str:
    """The text of one output stream of a run card ("stdout", "stderr"), without the final newline.

    Output is shown in the order it was written, so a stream may be in several pieces between the other's."""
    text = "".join(card.locator(f".{name}").all_text_contents())
    return text.removesuffix("\n")


_LAST_RUN_ID = "(() => { const c = document.querySelectorAll('.runs .run:not(.live)'); " \
    "return c.length ? c[c.length - 1].dataset.runId : ''; })()"


def last_run_id(page: Any) -> str:
    run_id: str = page.evaluate(_LAST_RUN_ID)
    return run_id


def wait_new_run(page: Any, previous_id: str, timeout: float = 90_000) -> Any:
    """Wait until a run newer than ``previous_id`` is the last card (the list is capped, so counts can stall)."""
    page.wait_for_function(f"() => {_LAST_RUN_ID} !== {previous_id!r}", timeout=timeout)
    return last_run(page)


def run(page: Any, program: str, *, language: str | None = None, stdin: str = "") -> Any:
    """Put ``program`` in the editor, run it, and return its card in the output panel once it is finished."""
    if language and page.input_value("#language") != language:
        page.select_option("#language", language)
        page.wait_for_selector(f".cm-editor[data-language={language}]")
    set_code(page, program)
    page.fill("#stdin", stdin)
    before = last_run_id(page)
    page.wait_for_selector("#run:enabled")
    page.click("#run")
    return wait_new_run(page, before, timeout=90_000)
