"""The recipes of docs/recipes.rst (tests/project/recipes.py), each in a real daphne and a real Chromium.

The pages are the recipes' own templates; the test watches them through an init script that
records what happened (htmx's ``htmx:sseOpen``, each ``EventSource``, each value the page gives
a ``<progress>``) without changing them.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from httpx_sse import EventSource
from playwright import sync_api as playwright_api

from tests.browser import chromium
from tests.servers import ROOT, Server, start
from tests.sse_client import BROWSER_HEADERS

SETTINGS = "tests.project.settings_recipes"
#: htmx and its SSE extension, from the npm registry (.ci/setup).
JS_FILES = [ROOT / ".cache" / "js" / name for name in ("htmx.min.js", "sse.min.js")]
TIMEOUT = 10_000  # ms, for each wait in a page

# One xdist worker runs the module: its server is started once.
pytestmark = pytest.mark.xdist_group("recipes")

RECORDER = """
window.recorded = {sseOpens: 0, sources: [], progress: []};
document.addEventListener("htmx:sseOpen", () => { window.recorded.sseOpens += 1; });
const NativeEventSource = window.EventSource;
window.EventSource = class extends NativeEventSource {
    constructor(...args) { super(...args); window.recorded.sources.push(this); }
};
const value = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, "value");
Object.defineProperty(HTMLProgressElement.prototype, "value", {
    ...value,
    set(v) { window.recorded.progress.push([Number(v), performance.now()]); value.set.call(this, v); },
});
"""


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    running = start("daphne", settings=SETTINGS)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_api.Browser]:
    with chromium() as running:
        yield running


@pytest.fixture
def page(browser, server) -> Iterator[playwright_api.Page]:
    context = browser.new_context(base_url=server.base_url)
    context.add_init_script(RECORDER)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
        assert errors == [], errors
    finally:
        context.close()


def create_user(server: Server, username: str) -> int:
    """Create a user in the server process; the number of users after it."""
    response = httpx.post(server.url("/recipes/users/"), data={"username": username}, timeout=10)
    response.raise_for_status()
    return int(response.json()["users"])


# 1. htmx's SSE extension


def require_htmx() -> None:
    missing = [str(path) for path in JS_FILES if not path.is_file()]
    if missing:
        hint = f"missing {', '.join(missing)}: run .ci/setup (it downloads htmx from the npm registry)"
        if os.environ.get("CI") == "true":
            pytest.fail(hint)
        pytest.skip(hint)


def test_htmx_swaps_the_published_html_in(page, server):
    require_htmx()
    page.goto("/recipes/htmx/")
    page.wait_for_function("window.recorded.sseOpens === 1", timeout=TIMEOUT)

    # Another client publishes: a POST with the CSRF token, as a form of the project would send it.
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        client.get("/recipes/htmx/").raise_for_status()
        token = client.cookies["csrftoken"]
        response = client.post(
            "/recipes/notify/", data={"text": "<b>one</b> & two"}, headers={"X-CSRFToken": token}
        )
        assert response.status_code == 204
    page.wait_for_function(
        "document.querySelectorAll('#notifications li.notification').length === 1", timeout=TIMEOUT
    )
    # The template escaped the text: it is text in the page, not markup.
    assert page.text_content("#notifications li") == "<b>one</b> & two"
    assert page.query_selector("#notifications b") is None

    # The page's own htmx form publishes the second: hx-swap="beforeend" appends it.
    page.fill("input[name=text]", "second")
    page.click("button")
    page.wait_for_function(
        "document.querySelectorAll('#notifications li.notification').length === 2", timeout=TIMEOUT
    )
    texts = [li.text_content() for li in page.query_selector_all("#notifications li")]
    assert texts == ["<b>one</b> & two", "second"]
    # hx-on::after-request resets the form once the POST's answer is in, which may come after the event.
    page.wait_for_function("document.querySelector('input[name=text]').value === ''", timeout=TIMEOUT)
    # One connection all along: no error, no reconnection.
    assert page.evaluate("window.recorded.sseOpens") == 1
    assert page.evaluate("window.recorded.sources.length") == 1


# 2. A progress bar for a long job, with a sync generator


def test_progress_bar_fills_in_order_and_the_page_closes_the_stream(page):
    page.goto("/recipes/import/")
    page.click("#start")
    page.wait_for_function("document.getElementById('result').textContent !== ''", timeout=TIMEOUT)
    assert page.text_content("#result") == "20 rows imported"
    assert page.evaluate("document.getElementById('progress').value") == 100
    # The click set 0; then every step's percentage, in increasing order, as each event arrived.
    values = page.evaluate("window.recorded.progress")
    percents = [v for v, _ in values]
    assert percents == [0, *range(5, 101, 5)], percents
    first, last = values[1][1], values[-1][1]
    assert last - first > 300, f"the bar went from 5 to 100 in {last - first:.0f} ms: events were held back"
    # The "done" handler closed the EventSource: the browser will not reconnect and run the job again.
    assert page.evaluate("window.recorded.sources.map((s) => s.readyState)") == [2]
    assert page.is_enabled("#start")


def test_progress_events_arrive_one_at_a_time(server):
    arrivals: list[tuple[float, str, str]] = []
    with httpx.Client(timeout=10) as client:
        started = time.monotonic()
        url = server.url("/recipes/import/events/")
        with client.stream("GET", url, headers=BROWSER_HEADERS) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert "content-encoding" not in response.headers  # GZip is on, and kept away
            for sse in EventSource(response).iter_sse():
                if sse.data:
                    arrivals.append((time.monotonic() - started, sse.event, sse.data))
                    if len(arrivals) == 1:
                        assert not response.is_closed  # the job is still running
            # The generator returned after "done": the response ended (the loop above saw its end).
    assert [event for _, event, _ in arrivals] == ["progress"] * 20 + ["done"]
    first, done = arrivals[0][0], arrivals[-1][0]
    # 20 steps of 50 ms: the first percentage arrives after the first step, not with the last.
    assert first < 0.6, f"the first progress event arrived only after {first:.2f} s"
    assert done - first > 0.3, f"all events arrived within {done - first:.2f} s: held back, then sent"
    times = [t for t, _, _ in arrivals]
    assert times == sorted(times)


# 3. A live dashboard fed by publish() from a signal


def test_dashboard_shows_the_snapshot_then_each_new_user(page, server):
    first_user = f"ada-{uuid.uuid4().hex[:8]}"
    count = create_user(server, first_user)
    page.goto("/recipes/dashboard/")
    # initial_events(): the numbers at once, without waiting for the next change.
    page.wait_for_function(f"document.getElementById('users').textContent === '{count}'", timeout=TIMEOUT)
    assert page.text_content("#newest") == first_user

    second_user = f"grace-{uuid.uuid4().hex[:8]}"
    assert create_user(server, second_user) == count + 1
    # post_save -> on_commit -> publish(): the open page follows.
    page.wait_for_function(f"document.getElementById('users').textContent === '{count + 1}'", timeout=TIMEOUT)
    assert page.text_content("#newest") == second_user
    assert page.evaluate("window.recorded.sources.map((s) => s.readyState)") == [1]  # still open
