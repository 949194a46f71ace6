"""Headless Chromium for the browser tests: Debian's ``chromium``, driven through Playwright."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

from playwright import sync_api as playwright_api

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Quiet and sandbox-free (the tests run as root in a container): nothing but the pages' traffic.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.contextmanager
def chromium() -> Iterator[playwright_api.Browser]:
    """A running headless Chromium, closed on the way out."""
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
