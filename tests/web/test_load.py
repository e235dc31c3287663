"""What the page costs to open: bytes before the editor is usable, and the wait for the first Python output.

The figures are recorded (printed and saved as ``load-figures.json`` under the test's temp dir), not asserted as
times; the one assertion is a byte budget that holds only while the runtimes stay out of the first load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import ThreadedServer, open_context
from tests.web.pages import set_code, wait_connected

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

# Everything the page needs before the editor works: CodeMirror, Yjs, the UI. Pyodide alone is ~3.5 MB gzipped;
# if it (or QuickJS) were ever loaded eagerly this budget would break.
FIRST_LOAD_BUDGET_BYTES = 600_000

_BYTES_BEFORE_READY = """() => {
  const ready = performance.getEntriesByName('ccl-editor-ready')[0].startTime;
  const nav = performance.getEntriesByType('navigation')[0];
  const resources = performance.getEntriesByType('resource').filter((r) => r.responseEnd <= ready);
  return {
    readyMs: Math.round(ready),
    transferBytes: nav.transferSize + resources.reduce((sum, r) => sum + r.transferSize, 0),
    decodedBytes: nav.decodedBodySize + resources.reduce((sum, r) => sum + r.decodedBodySize, 0),
    requests: resources.length + 1,
  };
}"""


def test_load_figures(web_server: ThreadedServer, browser: Any, tmp_path: Path) -> None:
    session_id = web_server.create_session("Load")
    context = open_context(browser)
    context.set_default_timeout(90_000)
    wire: dict[str, int] = {}

    def on_response(response: Any) -> None:
        length = response.headers.get("content-length")
        if length is not None:
            wire[response.url.split("/")[-1]] = int(length)

    context.on("response", on_response)
    try:
        page = context.new_page()
        page.goto(f"{web_server.base_url}/s/{session_id}")
        page.fill("#join-name", "Measurer")
        page.click("#join-submit")
        wait_connected(page)
        first = page.evaluate(_BYTES_BEFORE_READY)

        set_code(page, "print('first output')\n")
        clicked = page.evaluate("performance.now()")
        page.click("#run")
        page.wait_for_selector(".run:not(.live) .stdout:has-text('first output')")
        shown = page.evaluate("performance.now()")
    finally:
        context.close()

    figures = {
        "bytes_before_editor_usable": first["transferBytes"],
        "decoded_bytes_before_editor_usable": first["decodedBytes"],
        "requests_before_editor_usable": first["requests"],
        "ms_navigation_to_editor_usable": first["readyMs"],
        "ms_navigation_to_first_python_output": round(shown),
        "ms_run_click_to_first_python_output": round(shown - clicked),
        "pyodide_bytes_on_the_wire": sum(n for name, n in wire.items() if name.startswith(("pyodide", "python_"))),
    }
    (tmp_path / "load-figures.json").write_text(json.dumps(figures, indent=2))
    print("\nload figures:", json.dumps(figures))
    assert first["transferBytes"] < FIRST_LOAD_BUDGET_BYTES, figures
    assert figures["pyodide_bytes_on_the_wire"] > 0, "Pyodide came from our server"
