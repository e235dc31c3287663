"""Cost of one sandboxed run: p50/p90 wall time of each language's hello world.

Not a test. Runs the same sandbox the server uses (bwrap as the unprivileged uid, all limits on), one run at a
time, after one warm-up run per language (page cache, JIT-less first start), and prints a table:

    .venv/bin/python bench/exec_bench.py            # 15 runs per language
    .venv/bin/python bench/exec_bench.py -n 30 python cpp
    .venv/bin/python bench/exec_bench.py --url http://127.0.0.1:3000   # through a running server's API

With ``--url`` the figures include HTTP and JSON (the server must run with CODECONNECT_EXECUTION=sandbox and a
rate limit above the number of runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import urllib.request
from typing import Any

from codeconnect.config import Settings
from codeconnect.execution.sandbox import Sandbox
from codeconnect.execution.service import check_sandbox
from codeconnect.execution.toolchains import Toolchains
from codeconnect.languages import LANGUAGES, LanguageName, get_language


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        result: dict[str, Any] = json.load(response)
        return result


async def bench(languages: list[LanguageName], runs: int, url: str | None) -> int:
    settings = Settings(execution="sandbox")
    toolchains = Toolchains(settings)
    sandbox = Sandbox(settings)
    if url is None:
        await check_sandbox(settings, sandbox)
    print(f"{'language':<11} {'runs':>4} {'p50 ms':>8} {'p90 ms':>8} {'min ms':>8} {'max ms':>8}")
    failed = 0
    for language in languages:
        code = get_language(language).starter
        if url is None and not toolchains.availability(language).available:
            print(f"{language:<11} unavailable: missing {', '.join(toolchains.availability(language).missing)}")
            continue
        samples: list[float] = []
        for i in range(runs + 1):
            started = time.perf_counter()
            if url is None:
                outcome = await sandbox.run(toolchains.plan(language, code), b"")
                ok, out, detail = outcome.exit_code == 0, outcome.stdout.decode(), repr(outcome)
            else:
                result = await asyncio.to_thread(
                    _post, f"{url}/v1/execute", {"language": language, "code": code}
                )
                ok, out, detail = result["exitCode"] == 0, result["stdout"], json.dumps(result)
            elapsed = (time.perf_counter() - started) * 1000
            if not ok or "Hello, world!" not in out:
                print(f"{language}: run {i} failed: {detail}", file=sys.stderr)
                failed += 1
            if i > 0:  # the first run is a warm-up
                samples.append(elapsed)
        if not samples:
            continue
        samples.sort()
        p90 = samples[min(len(samples) - 1, int(round(0.9 * (len(samples) - 1))))]
        print(
            f"{language:<11} {len(samples):>4} {statistics.median(samples):>8.0f} {p90:>8.0f} "
            f"{samples[0]:>8.0f} {samples[-1]:>8.0f}"
        )
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("languages", nargs="*", help=f"any of {', '.join(LANGUAGES)} (default: all five)")
    parser.add_argument("-n", "--runs", type=int, default=15, help="measured runs per language (default 15)")
    parser.add_argument("--url", help="measure through a running server instead of calling the sandbox")
    args = parser.parse_args()
    unknown = [name for name in args.languages if name not in LANGUAGES]
    if unknown:
        parser.error(f"unknown language(s): {', '.join(unknown)}")
    languages = args.languages or list(LANGUAGES)
    return asyncio.run(bench(languages, args.runs, args.url.rstrip("/") if args.url else None))


if __name__ == "__main__":
    sys.exit(main())
