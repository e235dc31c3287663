"""TypeScript type errors before a run, and Python packages served by our own server to the in-browser Python."""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.request
from typing import Any

import pytest

from codeconnect.config import Settings
from codeconnect.web.pypackages import PACKAGE_LIST, PACKAGES_DIR
from tests.web.conftest import ThreadedServer, open_context, require, watch_for_page_errors
from tests.web.pages import join, run, stream

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

TYPE_ERROR = "const x: number = \"oops\";\nconsole.log(x);\n"
TYPE_ERROR_MESSAGE = "line 1: Type 'string' is not assignable to type 'number'."


def pinned() -> dict[str, str]:
    """Project name -> sha256, from the committed list."""
    found = {}
    for line in PACKAGE_LIST.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==\S+ --hash=sha256:([0-9a-f]{64})$", line)
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def require_packages() -> None:
    require(
        any(PACKAGES_DIR.glob("*.whl")) and (PACKAGES_DIR / ".list").is_file(),
        "the in-browser Python's packages are not fetched (scripts/setup)",
    )


@pytest.fixture(scope="module")
def web_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    db = tmp_path_factory.mktemp("web-db") / "codeconnect.db"
    return Settings(database_url=f"sqlite+aiosqlite:///{db}", run_time_limit_seconds=30.0)


@pytest.fixture(scope="module")
def offline(web_server: ThreadedServer, browser: Any) -> Any:
    """A browser profile that can reach our server and nothing else; ``offline.blocked`` lists what was tried."""
    context = open_context(browser)
    context.set_default_timeout(30_000)
    blocked: list[str] = []
    requested: list[str] = []

    def gate(route: Any) -> None:
        url = route.request.url
        if url.startswith(web_server.base_url + "/") or url.startswith(("data:", "blob:")):
            requested.append(url)
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", gate)
    context.blocked = blocked
    context.requested = requested
    context.errors = watch_for_page_errors(context)
    yield context
    context.close()
    assert not context.errors, context.errors


@pytest.fixture(scope="module")
def pad(web_server: ThreadedServer, offline: Any) -> Any:
    page = join(offline, web_server.base_url, web_server.create_session("Packages and types"), "Typist")
    yield page
    assert not offline.blocked, offline.blocked


# --- TypeScript ------------------------------------------------------------------------------------------------


def test_a_type_error_is_reported_with_its_line_and_the_program_still_runs(pad: Any, offline: Any) -> None:
    card = run(pad, TYPE_ERROR, language="typescript")
    # The compiler came from our server, in a worker of its own.
    assert any("/assets/typecheck.worker-" in url for url in offline.requested)
    stderr = stream(card, "stderr")
    assert TYPE_ERROR_MESSAGE in stderr
    assert "running anyway" in stderr
    assert stream(card, "stdout") == "oops"
    assert card.locator(".run-status").inner_text() == "exit 0"
    # The diagnostics come before the program's output, as a compiler's would.
    assert card.locator(".output > span").first.get_attribute("class") == "stderr"


def test_a_correct_program_reports_no_diagnostics(pad: Any) -> None:
    # Everything the runner offers type-checks: console, readline, prompt, timers, top-level await, ES2023.
    program = (
        "const xs: number[] = [3, 1, 2];\n"
        "const line: string | null = readline();\n"
        "const sorted = xs.toSorted((a, b) => a - b);\n"
        "await new Promise<void>((resolve) => setTimeout(resolve, 1));\n"
        "queueMicrotask(() => console.error('micro'));\n"
        "const id = setInterval(() => undefined, 1000); clearInterval(id);\n"
        "console.log(sorted.join(','), line, prompt === undefined, xs.at(-1), xs.findLast((x) => x > 1));\n"
    )
    card = run(pad, program, language="typescript", stdin="hi\n")
    assert stream(card, "stdout") == "1,2,3 hi false 2 2"
    assert stream(card, "stderr") == "micro"
    assert card.locator(".run-status").inner_text() == "exit 0"


def test_several_errors_each_name_their_line(pad: Any) -> None:
    program = "let n: number = 1;\nn = 'two';\nfunction f(s: string) { return s; }\nf(3);\nundefinedThing();\n"
    stderr = stream(run(pad, program, language="typescript"), "stderr")
    assert "line 2: Type 'string' is not assignable to type 'number'." in stderr
    assert "line 4: Argument of type 'number' is not assignable to parameter of type 'string'." in stderr
    assert "line 5: Cannot find name 'undefinedThing'." in stderr
    assert "Found 3 type errors; running anyway." in stderr


def test_a_syntax_error_is_the_runners_to_report(pad: Any) -> None:
    card = run(pad, "const x: number = ;\n", language="typescript")
    stderr = stream(card, "stderr")
    assert "SyntaxError" in stderr
    assert "type error" not in stderr


def test_stop_on_type_errors_keeps_the_program_from_running(pad: Any) -> None:
    box = pad.locator("#stop-on-type-errors")
    if pad.input_value("#language") != "typescript":
        pad.select_option("#language", "typescript")
    box.check()
    try:
        card = run(pad, TYPE_ERROR, language="typescript")
        assert TYPE_ERROR_MESSAGE in stream(card, "stderr")
        assert "not run" in stream(card, "stderr")
        assert stream(card, "stdout") == ""
        assert card.locator(".run-status").inner_text() == "exit 1"
        # A correct program still runs with the box checked.
        assert stream(run(pad, "const ok: number = 4;\nconsole.log(ok);\n"), "stdout") == "4"
        # The choice belongs to this browser: it survives a reload.
        pad.reload()
        pad.wait_for_selector("body[data-ready]")
        assert pad.locator("#stop-on-type-errors").is_checked()
    finally:
        pad.locator("#stop-on-type-errors").uncheck()
    assert not pad.evaluate("localStorage.getItem('ccl.stopOnTypeErrors') === 'true'")


def test_the_checker_is_loaded_only_for_typescript(web_server: ThreadedServer, browser: Any) -> None:
    context = browser.new_context()
    context.set_default_timeout(30_000)
    scripts: list[str] = []
    context.on("request", lambda request: scripts.append(request.url))
    page = join(context, web_server.base_url, web_server.create_session("No types", "python"), "Pythonista")
    assert stream(run(page, "print('py')\n"), "stdout") == "py"
    assert stream(run(page, "console.log('js');\n", language="javascript"), "stdout") == "js"
    assert not [u for u in scripts if "typecheck" in u]
    context.close()


# --- Python packages ---------------------------------------------------------------------------------------------


def test_the_server_describes_its_packages(web_server: ThreadedServer) -> None:
    require_packages()
    lock = web_server.api("GET", "/py-packages/lock.json")["packages"]
    assert pinned().keys() <= lock.keys()
    assert lock["sortedcontainers"]["imports"] == ["sortedcontainers"]
    assert lock["python-dateutil"]["imports"] == ["dateutil"]
    assert lock["python-dateutil"]["depends"] == ["six"]
    assert lock["sympy"]["depends"] == ["mpmath"]
    entry = lock["sortedcontainers"]
    assert entry["sha256"] == pinned()["sortedcontainers"]
    with urllib.request.urlopen(f"{web_server.base_url}/py-packages/{entry['file_name']}", timeout=15) as response:
        body = response.read()
        assert response.headers["Content-Type"] == "application/zip"
        assert response.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    assert hashlib.sha256(body).hexdigest() == entry["sha256"]
    for name in ("..%2F..%2Fpyproject.toml", "lock.json.whl", "nothing-1.0-py3-none-any.whl"):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{web_server.base_url}/py-packages/{name}", timeout=15)
        assert info.value.code == 404
        assert json.load(info.value)["error"]


def test_a_package_is_imported_offline_from_our_server(pad: Any, offline: Any) -> None:
    require_packages()
    program = "from sortedcontainers import SortedList\ns = SortedList([3, 1, 2])\ns.add(0)\nprint(list(s))\n"
    card = run(pad, program, language="python")
    assert stream(card, "stdout") == "[0, 1, 2, 3]", stream(card, "stderr")
    assert card.locator(".run-status").inner_text() == "exit 0"
    assert any("/py-packages/sortedcontainers-" in url for url in offline.requested)
    # Only what the program imports is fetched.
    assert not any("/py-packages/sympy-" in url for url in offline.requested)


def test_a_package_and_its_dependency_load_together(pad: Any) -> None:
    require_packages()
    program = "from dateutil.relativedelta import relativedelta\nimport datetime\n" \
        "print(datetime.date(2024, 1, 31) + relativedelta(months=1))\n"
    card = run(pad, program, language="python")
    assert stream(card, "stdout") == "2024-02-29", stream(card, "stderr")


def test_a_missing_package_says_what_is_available(pad: Any) -> None:
    card = run(pad, "x = 1\nimport numpy as np\nprint(np.zeros(3))\n", language="python")
    stderr = stream(card, "stderr")
    assert "main.py line 2: ModuleNotFoundError: No module named 'numpy'" in stderr
    assert "numpy is not available in the browser's Python" in stderr
    if any(PACKAGES_DIR.glob("*.whl")):
        assert "sortedcontainers" in stderr and "networkx" in stderr
    assert "Traceback" not in stderr
    assert card.locator(".run-status").inner_text() == "exit 1"
    # This server does not run Python itself, so nothing is offered.
    assert pad.locator("#server-offer").is_hidden()
    # A program that handles the ImportError itself is left alone.
    program = "try:\n    import numpy\nexcept ImportError:\n    print('no numpy, fine')\n"
    card = run(pad, program)
    assert stream(card, "stdout") == "no numpy, fine"
    assert stream(card, "stderr") == ""


def test_the_server_is_offered_where_it_runs_python(web_server: ThreadedServer, new_context: Any) -> None:
    context = new_context()
    # This server's sandbox is off; the page is told it runs Python, as a server with the sandbox on would say.
    languages = {"enabled": True, "languages": [{"language": "python", "available": True, "missing": []}]}
    context.route("**/v1/execute/languages", lambda route: route.fulfill(json=languages))
    settings = {"executionEnabled": True, "allowClearOutput": True, "execution": "sandbox", "languages": None}
    context.route("**/v1/sessions/*/settings", lambda route: route.fulfill(json=settings))
    page = join(context, web_server.base_url, web_server.create_session("Numpy", "python"), "Analyst")
    card = run(page, "import numpy\n")
    assert "numpy is not available" in stream(card, "stderr")
    offer = page.locator("#server-offer")
    offer.wait_for(state="visible")
    assert "numpy" in offer.inner_text()
    before = page.locator(".runs .run:not(.live)").count()
    page.click("#run-on-server")
    page.wait_for_function(f"() => document.querySelectorAll('.runs .run:not(.live)').length > {before}")
    # The run went to the server (which refuses here: its sandbox is off).
    server_card = page.locator(".runs .run:not(.live)").last
    assert server_card.locator(".run-lang").inner_text() == "Python · server"
    assert "execution_disabled" in stream(server_card, "stderr")
    assert offer.is_hidden()
