"""Frame times of playback in headless Chromium: a recorded session of three typists (``recorded_session.py``) is
imported into a fresh server, its owner's page opens History and plays it at 16x while the page records every
requestAnimationFrame: the interval between frames (what the person sees) and the time playback's own work took in
each frame. Prints p50/p95/p99 of both.

    .venv/bin/python bench/playback_frames.py                          # 20,000 changes over an hour, 60 s played
    .venv/bin/python bench/playback_frames.py --changes 3000 --seconds 150 --play 0   # to the end

Needs the built page (scripts/build-web) and Debian's Chromium (/usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

# Every animation frame's time, and the playback's work per frame, from the moment play starts.
_COLLECT = """() => {
  window.cclFrames = [];
  window.cclPlaybackWork = [];
  const tick = (t) => { window.cclFrames.push(t); if (!window.cclFramesDone) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
}"""


def open_as_owner(page: Any, base_url: str, session_id: str, owner_key: str, name: str = "Olive") -> None:
    """Open the session as its owner (the browser holds the key, as the one that created it would) and History."""
    page.goto(base_url + "/")
    entry = {"id": session_id, "title": "Recorded", "language": "python", "ownerKey": owner_key,
             "openedAt": "2026-01-05T09:00:00Z"}  # fmt: skip
    page.evaluate(f"localStorage.setItem('ccl.recent', JSON.stringify([{json.dumps(entry)}]))")
    page.goto(f"{base_url}/s/{session_id}")
    page.fill("#join-name", name)
    page.click("#join-submit")
    page.wait_for_selector("body[data-ready]")
    page.click("#history")
    page.wait_for_selector("#playback[data-index]", timeout=120_000)


def play_and_measure(page: Any, speed: int = 16, seconds: float | None = None) -> list[float]:
    """Play from the start at ``speed``; until the end (``seconds`` None) or for ``seconds``. The intervals between
    animation frames (ms); the playback's own work per frame is left in ``window.cclPlaybackWork``."""
    page.select_option("#playback-speed", str(speed))
    page.focus("#playback-timeline")
    page.keyboard.press("Home")
    page.wait_for_selector("#playback[data-index='0']")
    page.evaluate(_COLLECT)
    page.keyboard.press(" ")
    page.wait_for_selector("#playback[data-playing='true']")
    if seconds is None:
        page.wait_for_selector("#playback[data-playing='false']", timeout=600_000)
    else:
        page.wait_for_function(
            f"() => window.cclFrames.length && window.cclFrames.at(-1) - window.cclFrames[0] > {seconds * 1000}",
            timeout=(seconds + 60) * 1000,
        )
        page.click("#playback-play")
    page.evaluate("window.cclFramesDone = true")
    frames: list[float] = page.evaluate("window.cclFrames")
    return [b - a for a, b in zip(frames, frames[1:], strict=False)]


def percentiles(values: list[float]) -> str:
    cuts = statistics.quantiles(values, n=100)
    p50 = statistics.median(values)
    return f"p50 {p50:.2f} ms, p95 {cuts[94]:.2f} ms, p99 {cuts[98]:.2f} ms, max {max(values):.2f} ms"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=3600.0, help="length of the recorded session")
    parser.add_argument("--play", type=float, default=60.0, help="seconds of playing measured; 0: to the end")
    parser.add_argument("--speed", type=int, default=16)
    args = parser.parse_args()

    import httpx
    from liveload import ServerProcess
    from playwright.sync_api import sync_playwright
    from recorded_session import session_export

    document = session_export(args.changes, args.seconds)
    server = await ServerProcess.start({"CODECONNECT_IMPORT_MAX_BYTES": str(256 * 1024 * 1024)})
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=300) as client:
            r = await client.post("/v1/sessions/import", json=document)
            r.raise_for_status()
            created = r.json()

        def browse() -> tuple[list[float], list[float], float]:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                page = browser.new_context(viewport={"width": 1280, "height": 760}).new_page()
                opened = time.perf_counter()
                open_as_owner(page, server.base_url, created["id"], created["ownerKey"])
                ready = time.perf_counter() - opened
                intervals = play_and_measure(page, args.speed, args.play or None)
                work: list[float] = page.evaluate("window.cclPlaybackWork")
                browser.close()
                return intervals, work, ready

        intervals, work, ready = await asyncio.to_thread(browse)
    finally:
        server.stop()
    print(f"{args.changes} changes over {args.seconds:.0f} s, played at {args.speed}x; History open in {ready:.1f} s")
    print(f"frame interval ({len(intervals)} frames): {percentiles(intervals)}")
    print(f"playback work per frame: {percentiles(work)}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
