"""The start-up self-test of each language: a tiny program per language the host has the tools for.

Having the tools is not the same as being able to run: the JVM may not start under the memory bounds, the
TypeScript stripper may be unreadable to the sandbox's user, a compiler may be broken. Each language runs one
program through the real sandbox, with the real limits, before the server answers; one that fails is
unavailable with the reason (its output), the others go on.
"""

from __future__ import annotations

import asyncio
import logging

from codeconnect.execution.sandbox import Outcome, Sandbox
from codeconnect.execution.toolchains import Toolchains
from codeconnect.languages import LanguageName

log = logging.getLogger(__name__)

EXPECTED = "self-test ok\n"
PROGRAMS: dict[LanguageName, str] = {
    "python": 'print("self-test ok")\n',
    "javascript": 'console.log("self-test ok");\n',
    # A type annotation, so the stripper has work to do.
    "typescript": 'const message: string = "self-test ok";\nconsole.log(message);\n',
    "java": 'public class Main { public static void main(String[] a) { System.out.println("self-test ok"); } }\n',
    "cpp": '#include <cstdio>\nint main() { std::puts("self-test ok"); }\n',
}


def _failure(outcome: Outcome) -> str | None:
    """Why the probe failed (with the tail of what it printed), or None when it printed what it should."""
    if outcome.exit_code == 0 and outcome.stdout.decode("utf-8", "replace") == EXPECTED:
        return None
    if outcome.timed_out:
        status = "timed out"
    elif outcome.signal is not None:
        status = f"killed by signal {outcome.signal}"
    else:
        status = f"exit {outcome.exit_code}"
    said = (outcome.compile_output + outcome.stderr + outcome.stdout).decode("utf-8", "replace").strip()
    return f"its start-up self-test program failed ({status}): {said[-400:] or '(no output)'}"


async def check_languages(toolchains: Toolchains, sandbox: Sandbox, at_once: int) -> dict[LanguageName, str]:
    """Run every language whose tools are present; the ones that failed, with why. ``at_once`` bounds the runs
    in flight (the cgroup of all runs is sized for that many)."""
    gate = asyncio.Semaphore(max(1, at_once))

    async def probe(language: LanguageName) -> tuple[LanguageName, str | None]:
        async with gate:
            try:
                outcome = await sandbox.run(toolchains.plan(language, PROGRAMS[language]), b"")
            except OSError as exc:
                return language, f"its start-up self-test could not start: {exc}"
        return language, _failure(outcome)

    # The slow ones first (javac + JVM, g++), so the others run beside them instead of after them.
    slow = {"java": 0, "cpp": 1}
    available = [a.language for a in toolchains.all_availability() if a.available]
    languages = sorted(available, key=lambda language: slow.get(language, len(slow)))
    results = await asyncio.gather(*(probe(language) for language in languages))
    failed = {language: why for language, why in results if why is not None}
    for language, why in failed.items():
        log.warning("sandbox: %s is unavailable: %s", language, why)
    if languages:
        passed = [language for language in languages if language not in failed]
        log.info("sandbox: self-test passed for %s", ", ".join(passed) or "no language")
    return failed
