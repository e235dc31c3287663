"""What a workspace's policy looks like on the page: Run off with the reason, forbidden languages greyed out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from codeconnect.config import Settings
from tests.web.conftest import ThreadedServer, watch_for_page_errors
from tests.web.pages import join

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

ADMIN = "page-policy-admin-token-0123456789"


@pytest.fixture(scope="module")
def web_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    db = tmp_path_factory.mktemp("web-db") / "codeconnect.db"
    return Settings(database_url=f"sqlite+aiosqlite:///{db}", admin_token=ADMIN)


def test_the_page_shows_what_the_policy_forbids(
    web_server: ThreadedServer, new_context: Any, tmp_path: Path
) -> None:
    policy = {"execution": "none", "languages": ["python", "javascript"]}
    web_server.api("POST", "/v1/admin/workspaces", {"name": "classroom", "policy": policy}, bearer=ADMIN)
    key = web_server.api("POST", "/v1/admin/workspaces/classroom/keys", {}, bearer=ADMIN)["key"]
    session = web_server.api("POST", "/v1/sessions", {"title": "Homework", "language": "python"}, bearer=key)

    context = new_context()
    errors = watch_for_page_errors(context)
    pupil = join(context, web_server.base_url, session["id"], "Pupil")
    note = pupil.locator("#run-note")
    note.wait_for(state="visible")
    assert note.inner_text() == "This session's policy does not allow running code."
    assert pupil.locator("#run").is_disabled()
    pupil.wait_for_function(
        "() => [...document.querySelectorAll('#language option')].filter((o) => o.disabled).length === 3"
    )
    disabled = pupil.eval_on_selector_all("#language option:disabled", "(options) => options.map((o) => o.value)")
    assert disabled == ["typescript", "java", "cpp"]
    pupil.screenshot(path=str(tmp_path / "policy.png"))

    # the workspace's policy changes: the page follows at its next look at the settings (a reload here)
    web_server.api("PUT", "/v1/admin/workspaces/classroom/policy", {"execution": "browser"}, bearer=ADMIN)
    pupil.reload()
    pupil.wait_for_selector("#conn[data-state=connected]")
    pupil.wait_for_function("() => !document.querySelector('#run').disabled")
    assert pupil.eval_on_selector_all("#language option:disabled", "(options) => options.length") == 0
    assert not errors, errors
