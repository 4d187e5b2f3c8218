"""Browser tests: Playwright for Python driving Debian's chromium (`playwright install` cannot
download here), with axe-core (bundled by axe-playwright-python) for accessibility checks."""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# as the machine's notes advise: no background networking on this closed network
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            "chromium is missing: `make test` installs Debian's chromium (see the Makefile's browser target)"
        )


@contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    require_chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def accessibility_problems(page: Any) -> list[str]:
    """Serious and critical axe-core violations of the page, one line each."""
    from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]

    results = Axe().run(page)
    found = []
    for v in results.response.get("violations", []):
        if v.get("impact") in ("serious", "critical"):
            targets = [", ".join(n.get("target", [])) for n in v.get("nodes", [])][:3]
            found.append(f"{v['id']} ({v['impact']}): {v['help']} at {targets}")
    return found


def sign_in(page: Any, base: str, username: str, password: str, next_path: str = "/clusters") -> None:
    page.goto(f"{base}/login?next={next_path}")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#signin button[type=submit]")
    page.wait_for_url(lambda url: url == base + next_path)
