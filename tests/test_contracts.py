"""The web app's copy of the server's contracts (close codes, limits, languages, the run result) is generated;
this fails when the committed file and the server's definitions disagree."""

from __future__ import annotations

from codeconnect import contracts
from codeconnect.collab.protocol import CloseCode
from codeconnect.languages import LANGUAGES


def test_the_generated_module_is_up_to_date() -> None:
    assert contracts.TARGET.read_text() == contracts.typescript(), "run: python -m codeconnect.contracts"
    assert contracts.main(["--check"]) == 0


def test_it_carries_every_close_code_and_language() -> None:
    text = contracts.typescript()
    for code in CloseCode:
        assert f"  {code.name}: {int(code)}," in text
    for name in LANGUAGES:
        assert f'{{ name: "{name}"' in text
