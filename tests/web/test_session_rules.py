"""The owner's session rules in a real browser: the owner narrows where code runs and the languages within what the
workspace allows (never beyond it), its page follows at once, and a participant's page at its next look at the
settings."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from codeconnect.config import Settings
from tests.web.conftest import ThreadedServer, require
from tests.web.pages import join
from tests.web.test_layout_a11y import AXE
from tests.web.test_layout_a11y import _axe as axe_violations
from tests.web.test_owner_controls import create_as_owner

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

ADMIN = "page-rules-admin-token-0123456789"
NONE_NOTE = "This session's policy does not allow running code."
DISABLED_LANGUAGES = "(options) => options.filter((o) => o.disabled).map((o) => o.value)"


@pytest.fixture(scope="module")
def web_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    db = tmp_path_factory.mktemp("web-db") / "codeconnect.db"
    return Settings(database_url=f"sqlite+aiosqlite:///{db}", admin_token=ADMIN)


def disabled_languages(page: Any) -> list[str]:
    values: list[str] = page.eval_on_selector_all("#language option", DISABLED_LANGUAGES)
    return values


def test_the_owner_narrows_the_rules_and_everyone_follows(
    web_server: ThreadedServer, new_context: Any, tmp_path: Path
) -> None:
    # The workspace (the default one, where the home page creates sessions) allows four languages and six people;
    # this server runs no code itself, so code runs in browsers at most.
    web_server.api(
        "PUT",
        "/v1/admin/workspaces/default/policy",
        {"languages": ["python", "javascript", "typescript", "java"], "maxParticipants": 6},
        bearer=ADMIN,
    )
    owner, session_id = create_as_owner(new_context(), web_server.base_url, "Exam", "Olive")
    pat_context = new_context()
    pat_context.clock.install()  # its settings poll is moved on below instead of waited for
    pat = join(pat_context, web_server.base_url, session_id, "Pat")
    assert owner.is_visible("#session-rules")
    assert pat.locator("#session-rules").count() == 0  # only the owner's page has the rules
    pat.wait_for_selector("#run:enabled")

    # Opened with the keyboard; the choice that applies now has the focus.
    owner.focus("#session-rules")
    owner.keyboard.press("Enter")
    dialog = owner.locator("#rules-dialog")
    dialog.wait_for(state="visible")
    assert owner.evaluate("document.activeElement.id") == "rules-execution-browser"
    # Beyond the workspace: shown, off, and saying why.
    assert owner.is_disabled("#rules-execution-sandbox")
    assert owner.text_content("#rules-execution-sandbox-hint") == "This server does not run code itself."
    assert owner.is_checked("#rules-execution-browser") and owner.is_enabled("#rules-execution-none")
    offered = owner.eval_on_selector_all("#rules-languages input", "(inputs) => inputs.map((i) => i.value)")
    assert offered == ["python", "javascript", "typescript", "java"]  # never C++, which the workspace forbids
    assert owner.get_attribute("#rules-max", "max") == "6" and owner.input_value("#rules-max") == "6"

    # Escape closes it, and the focus goes back to the button.
    owner.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    owner.wait_for_function("() => document.activeElement?.id === 'session-rules'")

    owner.click("#session-rules")
    dialog.wait_for(state="visible")
    # The form refuses what the server would: no language, too many people.
    for name in ("python", "javascript", "typescript", "java"):
        owner.uncheck(f"#rules-language-{name}")
    owner.click("#rules-save")
    assert owner.text_content("#rules-error") == "Choose at least one language."
    owner.check("#rules-language-python")
    owner.fill("#rules-max", "7")
    owner.click("#rules-save")
    assert owner.text_content("#rules-error") == "Enter a number of participants from 1 to 6."
    assert owner.get_attribute("#rules-max", "aria-invalid") == "true"
    owner.fill("#rules-max", "3")
    owner.check("#rules-execution-none")
    assert owner.text_content("#rules-error") == ""
    shot = tmp_path / "rules-owner.png"
    owner.screenshot(path=str(shot))
    shutil.copyfile(shot, "/tmp/ccl-rules-owner.png")
    owner.click("#rules-save")
    dialog.wait_for(state="detached")

    policy = web_server.api("GET", f"/v1/sessions/{session_id}/policy")
    assert policy["session"] == {"execution": "none", "languages": ["python"], "maxParticipants": 3}
    # The owner's page follows at once.
    owner.wait_for_selector(f"#run-note:has-text(\"{NONE_NOTE}\")")
    assert owner.is_disabled("#run")
    owner.wait_for_function("() => document.querySelectorAll('#language option:disabled').length === 4")
    assert disabled_languages(owner) == ["javascript", "typescript", "java", "cpp"]
    shot = tmp_path / "rules-owner-saved.png"
    owner.screenshot(path=str(shot))
    shutil.copyfile(shot, "/tmp/ccl-rules-owner-saved.png")

    # The participant's page at its next look at the settings (every 20 seconds).
    pat.clock.fast_forward("00:21")
    pat.wait_for_selector(f"#run-note:has-text(\"{NONE_NOTE}\")")
    assert pat.is_disabled("#run")
    pat.wait_for_function("() => document.querySelectorAll('#language option:disabled').length === 4")
    assert disabled_languages(pat) == ["javascript", "typescript", "java", "cpp"]
    shot = tmp_path / "rules-participant.png"
    pat.screenshot(path=str(shot))
    shutil.copyfile(shot, "/tmp/ccl-rules-participant.png")

    # Reopened, the rules show what applies, and nothing wider than the workspace can be chosen.
    owner.click("#session-rules")
    dialog.wait_for(state="visible")
    assert owner.is_checked("#rules-execution-none") and owner.is_disabled("#rules-execution-sandbox")
    assert owner.is_checked("#rules-language-python") and not owner.is_checked("#rules-language-java")
    assert owner.input_value("#rules-max") == "3"
    # On a narrow window the dialog fits the width, and its footer stays reachable.
    owner.set_viewport_size({"width": 390, "height": 740})
    box = dialog.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    shot = tmp_path / "rules-narrow.png"
    owner.screenshot(path=str(shot))
    shutil.copyfile(shot, "/tmp/ccl-rules-narrow.png")
    owner.locator("#rules-save").scroll_into_view_if_needed()
    assert owner.locator("#rules-save").is_visible()
    owner.set_viewport_size({"width": 1280, "height": 760})
    # "Allow all" sets the form back to the workspace's rules; saving it follows the workspace again.
    owner.click("#rules-reset")
    assert owner.is_checked("#rules-execution-browser") and owner.input_value("#rules-max") == "6"
    owner.click("#rules-save")
    dialog.wait_for(state="detached")
    assert web_server.api("GET", f"/v1/sessions/{session_id}/policy")["session"] == {
        "execution": None,
        "languages": None,
        "maxParticipants": None,
    }
    owner.wait_for_selector("#run:enabled")
    owner.wait_for_function("() => document.querySelectorAll('#language option:disabled').length === 1")


def test_the_rules_say_when_the_workspace_refuses_them(
    web_server: ThreadedServer, new_context: Any, tmp_path: Path
) -> None:
    web_server.api("PUT", "/v1/admin/workspaces/default/policy", {}, bearer=ADMIN)
    owner, session_id = create_as_owner(new_context(), web_server.base_url, "Quiz", "Olive")
    owner.click("#session-rules")
    owner.locator("#rules-dialog").wait_for(state="visible")
    # The workspace narrows while the dialog is open: saving what it no longer allows is refused, in plain words.
    web_server.api("PUT", "/v1/admin/workspaces/default/policy", {"maxParticipants": 2}, bearer=ADMIN)
    owner.fill("#rules-max", "4")
    owner.click("#rules-save")
    owner.wait_for_selector("#rules-error:has-text('The workspace does not allow rules this open')")
    assert owner.is_visible("#rules-dialog")
    owner.click("#rules-cancel")
    owner.locator("#rules-dialog").wait_for(state="detached")
    assert web_server.api("GET", f"/v1/sessions/{session_id}/policy")["session"]["maxParticipants"] is None
    web_server.api("PUT", "/v1/admin/workspaces/default/policy", {}, bearer=ADMIN)


def test_axe_finds_nothing_serious_in_the_rules(web_server: ThreadedServer, new_context: Any, tmp_path: Path) -> None:
    require(AXE.is_file(), "axe-core is not installed (npm ci in web/, which scripts/build-web runs)")
    # The page's CSP allows no inline script, and axe is injected as one.
    owner, _ = create_as_owner(new_context(bypass_csp=True), web_server.base_url, "Axe", "Olive")
    owner.click("#session-rules")
    owner.wait_for_selector("#rules-dialog[open]")
    owner.fill("#rules-max", "0")
    owner.click("#rules-save")  # with its error showing
    owner.wait_for_selector("#rules-error:not(:empty)")
    assert not axe_violations(owner)
    owner.evaluate("() => { document.documentElement.dataset.theme = 'light'; }")  # as the settings menu does
    assert not axe_violations(owner)
    shot = tmp_path / "rules-light.png"
    owner.screenshot(path=str(shot))
    shutil.copyfile(shot, "/tmp/ccl-rules-light.png")
