"""Running code from the page: Pyodide, QuickJS, TypeScript; Stop, the time limit, and the shared output."""

from __future__ import annotations

from typing import Any

import pytest

from codeconnect.config import Settings
from tests.web.conftest import ThreadedServer, watch_for_page_errors
from tests.web.pages import join, last_run, last_run_id, run, run_cards, set_code, stream, wait_new_run

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

LIMIT_SECONDS = 3.0


@pytest.fixture(scope="module")
def web_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    db = tmp_path_factory.mktemp("web-db") / "codeconnect.db"
    # A short limit keeps the time-limit tests quick; the default is 10 s.
    return Settings(database_url=f"sqlite+aiosqlite:///{db}", run_time_limit_seconds=LIMIT_SECONDS)


@pytest.fixture(scope="module")
def pad(web_server: ThreadedServer, browser: Any) -> Any:
    """One person in one session for the whole module: runtimes load once, as they would for a real user."""
    context = browser.new_context(viewport={"width": 1280, "height": 760})
    context.set_default_timeout(30_000)
    errors = watch_for_page_errors(context)
    page = join(context, web_server.base_url, web_server.create_session("Runners"), "Runner")
    yield page
    context.close()
    assert not errors, errors


def stop_soon(page: Any, program: str, *, language: str) -> Any:
    if page.input_value("#language") != language:
        page.select_option("#language", language)
    set_code(page, program)
    before = last_run_id(page)
    page.click("#run")
    page.wait_for_selector(".run.live .run-status:has-text('Running')", timeout=90_000)
    page.click("#stop")
    return wait_new_run(page, before, timeout=30_000)


def test_python_runs_and_everyone_sees_the_output(web_server: ThreadedServer, new_context: Any) -> None:
    session_id = web_server.create_session("Shared output")
    runner = join(new_context(), web_server.base_url, session_id, "Runner")
    watcher = join(new_context(), web_server.base_url, session_id, "Watcher")
    set_code(runner, "import sys\nprint('hello from pyodide', sys.version_info[0])\n")
    runner.keyboard.press("ControlOrMeta+Enter")
    for page in (runner, watcher):
        page.wait_for_selector(".run:not(.live) .stdout:has-text('hello from pyodide 3')", timeout=90_000)
        card = last_run(page)
        assert card.locator(".run-who").inner_text() == "Runner"
        assert card.locator(".run-status").inner_text() == "exit 0"


def test_python_input_reads_the_stdin_box(pad: Any) -> None:
    card = run(pad, "name = input()\nage = int(input())\nprint(f'{name} is {age}')\n", stdin="Ada\n36\n")
    assert stream(card, "stdout") == "Ada is 36"
    card = run(pad, "input()\n", stdin="")
    assert "EOFError" in stream(card, "stderr")
    assert card.locator(".run-status").inner_text() == "exit 1"


def test_python_errors_and_exit_codes(pad: Any) -> None:
    card = run(pad, "def f():\n    1 / 0\nf()\n")
    stderr = stream(card, "stderr")
    assert "ZeroDivisionError" in stderr and 'File "main.py", line 2' in stderr
    assert "_ccl_run" not in stderr
    card = run(pad, "import sys\nsys.exit(3)\n")
    assert card.locator(".run-status").inner_text() == "exit 3"


def test_python_infinite_loop_is_stopped_by_stop_then_page_still_works(pad: Any) -> None:
    card = stop_soon(pad, "while True:\n    pass\n", language="python")
    assert card.locator(".run-status").inner_text() == "stopped"
    assert "KeyboardInterrupt" in stream(card, "stderr")
    card = run(pad, "print('still alive')\n")
    assert stream(card, "stdout") == "still alive"


def test_python_infinite_loop_is_stopped_by_the_time_limit(pad: Any) -> None:
    card = run(pad, "print('start', flush=True)\nwhile True:\n    pass\n", language="python")
    assert card.locator(".run-status").inner_text() == "timed out"
    assert stream(card, "stdout") == "start"
    assert "Time limit reached" in stream(card, "stderr")
    assert stream(run(pad, "print(6 * 7)\n"), "stdout") == "42"


def test_python_loop_that_ignores_interrupts_is_terminated(pad: Any) -> None:
    # Catching KeyboardInterrupt keeps the program alive: the worker is then terminated and replaced.
    program = (
        "while True:\n    try:\n        while True:\n            pass\n"
        "    except KeyboardInterrupt:\n        pass\n"
    )
    card = stop_soon(pad, program, language="python")
    assert card.locator(".run-status").inner_text() == "killed"
    assert "terminated" in stream(card, "stderr")
    assert stream(run(pad, "print('fresh worker')\n"), "stdout") == "fresh worker"


def test_javascript_runs_in_quickjs(pad: Any) -> None:
    program = (
        "const xs = [3, 1, 2].sort();\nconsole.log('sorted', xs, { ok: true });\n"
        "console.error('to stderr');\nPromise.resolve(5).then((v) => console.log('async', v));\n"
        "console.log(readline(), readline());\n"
    )
    card = run(pad, program, language="javascript", stdin="a\nb\n")
    assert stream(card, "stdout") == "sorted [ 1, 2, 3 ] { ok: true }\na b\nasync 5"
    assert stream(card, "stderr") == "to stderr"
    card = run(pad, "function f() { throw new TypeError('bad'); }\nf();\n")
    assert stream(card, "stderr").startswith("TypeError: bad")
    assert card.locator(".run-status").inner_text() == "exit 1"


def test_javascript_top_level_await(pad: Any) -> None:
    program = "const v = await Promise.resolve(41);\nconsole.log(v + 1);\n"
    assert stream(run(pad, program, language="javascript"), "stdout") == "42"
    card = run(pad, "await null;\nthrow new Error('late');\n")
    assert stream(card, "stderr").startswith("Error: late")
    assert card.locator(".run-status").inner_text() == "exit 1"
    card = run(pad, "function f() { await 1; }\n")
    assert stream(card, "stderr").startswith("SyntaxError")


def test_javascript_infinite_loop_is_stopped_by_stop_and_by_the_time_limit(pad: Any) -> None:
    card = stop_soon(pad, "for (;;) {}\n", language="javascript")
    assert card.locator(".run-status").inner_text() == "stopped"
    card = run(pad, "console.log('before');\nwhile (true) {}\n", language="javascript")
    assert card.locator(".run-status").inner_text() == "timed out"
    assert stream(card, "stdout") == "before"
    assert stream(run(pad, "console.log(1 + 1);\n"), "stdout") == "2"


def test_javascript_deep_recursion_fails_cleanly(pad: Any) -> None:
    card = run(pad, "function down(n) { return down(n + 1) + 1; }\ndown(0);\n", language="javascript")
    assert "RangeError" in stream(card, "stderr")
    assert stream(run(pad, "console.log('ok');\n"), "stdout") == "ok"


def test_javascript_memory_hog_ends_and_the_page_recovers(pad: Any) -> None:
    program = "const hoard = [];\nfor (;;) hoard.push(new Array(100000).fill(hoard.length));\n"
    card = run(pad, program, language="javascript")
    # QuickJS's allocator refuses past its limit, or the time limit ends it: either way the run is over.
    assert card.locator(".run-status").inner_text() in {"exit 1", "timed out", "killed"}
    assert stream(run(pad, "console.log('recovered');\n"), "stdout") == "recovered"


def test_typescript_runs_and_shows_syntax_errors(pad: Any) -> None:
    program = (
        "interface Point { x: number; y: number }\n"
        "const norm = (p: Point): number => Math.hypot(p.x, p.y);\n"
        "console.log(norm({ x: 3, y: 4 }));\n"
    )
    card = run(pad, program, language="typescript")
    assert stream(card, "stdout") == "5"
    card = run(pad, "const x: number = ;\n")
    assert card.locator(".run-status").inner_text() == "exit 1"
    assert "SyntaxError" in stream(card, "stderr")
    assert "main.ts" in stream(card, "stderr")


def test_output_is_capped(pad: Any) -> None:
    card = run(pad, "while True:\n    print('x' * 1000)\n", language="python")
    assert "Output limit reached" in stream(card, "stderr")
    assert len(stream(card, "stdout")) <= 64 * 1024
    assert card.locator(".note").inner_text() == "Output was cut at 64 KB."


def test_shared_output_keeps_the_last_twenty_runs(pad: Any) -> None:
    for i in range(22):
        run(pad, f"console.log('run {i}');\n", language="javascript")
    assert run_cards(pad).count() == 20
    assert stream(run_cards(pad).first, "stdout") == "run 2"
    assert stream(last_run(pad), "stdout") == "run 21"


def test_java_and_cpp_say_plainly_they_do_not_run_here(pad: Any) -> None:
    for language, label in (("java", "Java"), ("cpp", "C++")):
        pad.select_option("#language", language)
        pad.wait_for_selector(f".cm-editor[data-language={language}]")
        assert pad.is_disabled("#run")
        note = pad.inner_text("#run-note")
        assert f"does not run {label}" in note
    pad.select_option("#language", "python")
    assert pad.is_enabled("#run")
