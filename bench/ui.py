"""Web UI numbers (issue 11), with real processes: `moorage server` (SQLite, embedded NATS) holding
--addons (500) add-ons of state reported by a stand-in agent (as in bench/addon_state.py: agent
token, its NATS user, StateTracker reports with JetStream), a read-only user, and Debian's chromium
driven by Playwright for Python (the launch arguments of tests/integration/ui_support.py).

bytes    what the browser loads for the first page after signing in, /clusters/{c} (the add-ons
         table): the HTML, /ui/static/app.css and /ui/static/app.js, uncompressed and gzip level 6
         (Python's gzip module), and what the server itself sent for `Accept-Encoding: gzip`.
load     navigation to the add-ons table filled (--addons rows in `#addons tbody tr`): a fresh
         browser context each run (cold cache, signed in), then a second navigation in the same
         context (warm cache); and from the sign-in form's submit to the filled table. --runs each.
live     an agent's state report (one add-on, Synced <-> Degraded) to the row's
         `[data-field="state"]` text changed in the open add-ons page (page.wait_for_function; wall
         time from just before the publish), and when a MutationObserver in the page saw it:
         median / p99 of --changes.

    .venv/bin/python bench/ui.py [--runs 5] [--addons 500] [--changes 20]

Prints one JSON object (progress goes to stderr), with the load average before and after each part."""

import argparse
import gzip
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: `bench` importable
from bench.addon_state import (
    AgentFeed,
    Loop,
    Server,
    fed_cluster,
    fleet,
    load,
    observation,
    say,
    source,
    summary,
)
from tests.integration.ui_support import CHROMIUM, CHROMIUM_ARGS, DESKTOP

CLUSTER = "ui"
USER, PASSWORD = "rita", "reader-password-0001"
ROWS = "n => document.querySelectorAll('#addons tbody tr').length >= n"
STATE_IS = """([name, want]) => {
  const cell = document.querySelector(`tr[data-addon="${name}"] [data-field="state"]`);
  return cell !== null && cell.textContent.trim() === want;
}"""
WATCH = """(name) => {
  window.__changedAt = null;
  const cell = document.querySelector(`tr[data-addon="${name}"] [data-field="state"]`);
  const observer = new MutationObserver(() => {
    if (window.__changedAt === null) window.__changedAt = Date.now();
    observer.disconnect();
  });
  observer.observe(cell, {childList: true, subtree: true, characterData: true});
}"""
NAVIGATION = """() => {
  const n = performance.getEntriesByType("navigation")[0];
  return {ttfb: n.responseStart, response_end: n.responseEnd, dom_content_loaded: n.domContentLoadedEventEnd,
          load: n.loadEventEnd, transfer_size: n.transferSize, decoded_size: n.decodedBodySize};
}"""


def gzip6(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=6))


def part_bytes(server: Server) -> dict[str, Any]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        client.post(
            "/api/v1/session", json={"username": USER, "password": PASSWORD}
        ).raise_for_status()  # the cookie
        resources: dict[str, Any] = {}
        html = client.get(f"/clusters/{CLUSTER}", headers={"Accept-Encoding": "gzip"}).raise_for_status()
        paths = [f"/clusters/{CLUSTER}"]
        paths += re.findall(r'(?:href|src)="(/ui/static/app\.(?:css|js)[^"]*)"', html.text)
        for path in paths:
            r = client.get(path, headers={"Accept-Encoding": "gzip"}).raise_for_status()
            resources[path] = {
                "bytes": len(r.content),
                "gzip6_bytes": gzip6(r.content),
                "served_content_encoding": r.headers.get("content-encoding", "identity"),
                "served_bytes_on_the_wire": r.num_bytes_downloaded,
                "cache_control": r.headers.get("cache-control"),
                "etag": r.headers.get("etag") is not None,
            }
    compressed = any(v["served_content_encoding"] != "identity" for v in resources.values())
    return {
        "resources": resources,
        "total_bytes": sum(v["bytes"] for v in resources.values()),
        "total_gzip6_bytes": sum(v["gzip6_bytes"] for v in resources.values()),
        "total_served_bytes": sum(v["served_bytes_on_the_wire"] for v in resources.values()),
        "note": (
            "the server compresses responses itself"
            if compressed
            else "the server does not compress today (no Content-Encoding for Accept-Encoding: gzip); "
            "gzip6_bytes are Python's gzip at level 6"
        ),
    }


def sign_in(page: Any, base: str, next_path: str) -> float:
    """tests/integration/ui_support.sign_in, timed: ms from the submit to the add-ons table filled."""
    page.goto(f"{base}/login?next={next_path}")
    page.fill("#username", USER)
    page.fill("#password", PASSWORD)
    started = time.perf_counter()
    page.click("#signin button[type=submit]")
    page.wait_for_url(lambda url: url == base + next_path)
    return started


def filled(page: Any, rows: int) -> None:
    page.wait_for_function(ROWS, arg=rows, polling="raf", timeout=60_000)


def navigate(page: Any, url: str, rows: int) -> float:
    """ms from the start of the navigation to `rows` rows in the add-ons table."""
    started = time.perf_counter()
    page.goto(url, wait_until="commit")
    filled(page, rows)
    return (time.perf_counter() - started) * 1000


def part_load(browser: Any, server: Server, rows: int, runs: int) -> dict[str, Any]:
    url = f"{server.url}/clusters/{CLUSTER}"
    signin_ms: list[float] = []
    cold_ms: list[float] = []
    warm_ms: list[float] = []
    cold_nav: list[dict[str, float]] = []
    requested: list[str] = []  # by the first cold navigation, until its load event

    def record(request: Any) -> None:
        requested.append(request.url.replace(server.url, ""))

    state: Any = None
    for run in range(runs):
        context = browser.new_context(viewport=DESKTOP)
        try:
            page = context.new_page()
            started = sign_in(page, server.url, f"/clusters/{CLUSTER}")
            filled(page, rows)
            signin_ms.append((time.perf_counter() - started) * 1000)
            state = context.storage_state()
        finally:
            context.close()
        context = browser.new_context(viewport=DESKTOP, storage_state=state)
        try:
            page = context.new_page()
            if run == 0:
                page.on("request", record)
            cold_ms.append(navigate(page, url, rows))
            page.wait_for_load_state("load")  # after the measurement: app.js has opened its EventSource
            cold_nav.append(page.evaluate(NAVIGATION))
            if run == 0:
                page.remove_listener("request", record)
            warm_ms.append(navigate(page, url, rows))
        finally:
            context.close()
        say(f"load run {run}: cold {cold_ms[-1]:.0f} ms, warm {warm_ms[-1]:.0f} ms")

    def nav_median(key: str) -> float:
        return round(statistics.median(n[key] for n in cold_nav), 1)

    return {
        "rows": rows,
        "runs": runs,
        "navigation_to_table_filled_cold_cache_ms": [round(x) for x in cold_ms],
        "navigation_to_table_filled_cold_cache_ms_median": round(statistics.median(cold_ms)),
        "navigation_to_table_filled_warm_cache_ms": [round(x) for x in warm_ms],
        "navigation_to_table_filled_warm_cache_ms_median": round(statistics.median(warm_ms)),
        "signin_submit_to_table_filled_ms": [round(x) for x in signin_ms],
        "signin_submit_to_table_filled_ms_median": round(statistics.median(signin_ms)),
        "cold_navigation_timing_ms_median": {
            "ttfb": nav_median("ttfb"),
            "response_end": nav_median("response_end"),
            "dom_content_loaded": nav_median("dom_content_loaded"),
            "load": nav_median("load"),
        },
        "html_transfer_bytes": cold_nav[0]["transfer_size"],
        "requests_of_a_cold_navigation": requested,
    }


def part_live(browser: Any, server: Server, feed: AgentFeed, addons: int, changes: int) -> dict[str, Any]:
    target = addons // 2 + 1  # no drift: Synced <-> Degraded
    current = fleet(addons)
    name = current[target].name
    wall: list[float] = []
    in_page: list[float] = []
    context = browser.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        sign_in(page, server.url, f"/clusters/{CLUSTER}")
        filled(page, addons)
        page.wait_for_timeout(1000)  # the EventSource is connected
        for k in range(changes):
            health = "Degraded" if k % 2 == 0 else "Healthy"
            want = "Degraded" if health == "Degraded" else "Synced"
            current[target] = observation(target, health=health)
            reports = feed.reports(current)
            assert len(reports) == 1
            page.evaluate(WATCH, name)
            epoch, started = time.time(), time.perf_counter()
            sent = feed.send(reports)
            page.wait_for_function(STATE_IS, arg=[name, want], polling="raf", timeout=30_000)
            wall.append((time.perf_counter() - started) * 1000)
            sent.result(30)
            at = page.evaluate("window.__changedAt")
            if at is not None:
                in_page.append(at - epoch * 1000)
            page.wait_for_timeout(100)
    finally:
        context.close()
    say(f"live: {summary(wall)}")
    return {
        "page_rows": addons,
        "addon": name,
        "report_to_row_changed_wait_for_function": summary(wall),
        "report_to_row_changed_mutation_observer": summary(in_page) if in_page else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--addons", type=int, default=500)
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing (Debian's chromium)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so every `finally` stops what it started
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="moorage-bench-ui-"))
    results: dict[str, Any] = {"cpus": os.cpu_count(), "moorage": source(), "work": str(work)}

    def timed(part: str, run: Callable[[], dict[str, Any]]) -> None:
        before, started = load(), time.monotonic()
        say(f"{part}: load average {before}")
        results[part] = run()
        results[part]["load_average_before_after"] = [before, load()]
        results[part]["seconds"] = round(time.monotonic() - started, 1)

    loop = Loop()
    try:
        with Server(work, "server") as server, fed_cluster(server, loop, CLUSTER, args.addons) as feed:
            server.api.post(
                "/users", json={"username": USER, "password": PASSWORD, "role": "read"}
            ).raise_for_status()
            timed("bytes", lambda: part_bytes(server))
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    results["chromium"] = f"{CHROMIUM} {browser.version}"
                    timed("load", lambda: part_load(browser, server, args.addons, args.runs))
                    timed("live", lambda: part_live(browser, server, feed, args.addons, args.changes))
                finally:
                    browser.close()
    finally:
        loop.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
