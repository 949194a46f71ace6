"""A real headless Chromium keeps every event across a server crash and restart."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
from playwright import sync_api as playwright_api

from tests.browser import chromium
from tests.servers import start, start_publisher

EVENTS = 200


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_api.Browser]:
    with chromium() as running:
        yield running


def wait_in_page(page, expression: str, timeout: float) -> None:
    page.wait_for_function(expression, timeout=timeout * 1000)


def test_every_event_exactly_once_in_order_across_a_server_kill(browser):
    server = start("daphne")
    page = browser.new_page()
    publisher = None
    try:
        page.goto(server.url("/browser/"))
        wait_in_page(page, "window.opens === 1", timeout=10)
        publisher = start_publisher("browser", EVENTS, 0.02)  # 4 s of publishing
        wait_in_page(page, "window.received.length >= 40", timeout=20)
        server.process.send_signal(signal.SIGKILL)  # a crash: nothing is closed cleanly
        server.process.wait(timeout=10)
        killed_at = len(page.evaluate("window.received"))
        time.sleep(0.5)  # events keep being published (and stored) while no server runs
        server = start("daphne", port=server.port)
        wait_in_page(page, f"window.received.length >= {EVENTS}", timeout=30)
        assert publisher.wait(timeout=30) == 0
        received = page.evaluate("window.received")
        assert received == list(range(EVENTS))
        assert killed_at < EVENTS  # the kill really happened mid-stream
        assert page.evaluate("window.opens") >= 2 and page.evaluate("window.resets") == 0
    finally:
        page.close()
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
        server.stop()
