"""A real headless Chromium reads event streams from another origin: django-cors-headers and tokens.

Three daphne servers of the same project (tests/project/settings_cors.py): B serves the streams and
allows A's origin, with credentials; A and C serve the page that opens the ``EventSource``. Cookies
ignore ports, so a login on B is a cookie of 127.0.0.1 for all three, and 127.0.0.1:A -> 127.0.0.1:B
is same-site: the ``Lax`` session cookie goes along when ``withCredentials`` is set.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import SimpleNamespace
from urllib.parse import quote, urlencode

import httpx
import pytest
from playwright import sync_api as playwright_api

from tests.browser import chromium
from tests.servers import environment, free_port, start

SETTINGS = "tests.project.settings_cors"

# One xdist worker runs the module: its three servers are started once.
pytestmark = pytest.mark.xdist_group("browser-cors")


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_api.Browser]:
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def cors() -> Iterator[SimpleNamespace]:
    """Servers A (the allowed origin), B (the streams) and C (an origin B does not allow)."""
    port_a = free_port()
    env = {**environment(SETTINGS), "SSE_TEST_CORS_ORIGINS": f"http://127.0.0.1:{port_a}"}
    servers = SimpleNamespace(env=env)
    try:
        servers.a = start("daphne", env=env, port=port_a)
        servers.b = start("daphne", env=env)
        servers.c = start("daphne", env=env)
        yield servers
    finally:
        for name in ("a", "b", "c"):  # a test may have restarted one: the handles in here are current
            if hasattr(servers, name):
                getattr(servers, name).stop()


@pytest.fixture
def context(browser) -> Iterator[playwright_api.BrowserContext]:
    """A fresh browser context per test: no cookies."""
    context = browser.new_context()
    try:
        yield context
    finally:
        context.close()


def open_page(context, origin, src: str, *, credentials: bool) -> playwright_api.Page:
    page = context.new_page()
    query = urlencode({"src": src, "credentials": "1" if credentials else "0"})
    page.goto(origin.url(f"/cors/page/?{query}"))
    return page


def wait_in_page(page, expression: str, timeout: float = 10) -> None:
    page.wait_for_function(expression, timeout=timeout * 1000)


def publish(server, channel: str, count: int) -> None:
    response = httpx.get(server.url(f"/publish/{channel}/?n={count}"), timeout=10)
    assert response.status_code == 200, response.text


def token(server, channels: str, expires_in: float = 60) -> str:
    response = httpx.get(server.url("/cors/sign/"), params={"channels": channels, "expires_in": expires_in})
    return response.json()["token"]


def refused(page) -> None:
    """The EventSource failed (bounded wait) and is CLOSED, having opened nothing and received nothing."""
    wait_in_page(page, "window.errors >= 1 && window.state === 2")
    assert page.evaluate("[window.opens, window.received]") == [0, []]


def test_with_credentials_the_session_cookie_is_sent_and_events_arrive(cors, context):
    page = context.new_page()
    page.goto(cors.b.url("/login/ada/"))  # the session cookie, as a login form on B would set it
    [session] = [cookie for cookie in context.cookies() if cookie["name"] == "sessionid"]
    assert session["sameSite"] == "Lax"  # Django's default, enough on 127.0.0.1 (same site)
    page = open_page(context, cors.a, cors.b.url("/cors/members/cors-a/"), credentials=True)
    wait_in_page(page, "window.opens === 1")
    publish(cors.b, "cors-a", 3)
    wait_in_page(page, "window.received.length >= 3")
    assert page.evaluate("window.received") == [0, 1, 2]


def test_without_login_or_without_credentials_the_stream_is_refused(cors, context):
    anonymous = open_page(context, cors.a, cors.b.url("/cors/members/cors-b/"), credentials=True)
    refused(anonymous)
    context.new_page().goto(cors.b.url("/login/bob/"))
    # Logged in, but without withCredentials a cross-origin EventSource sends no cookie.
    no_credentials = open_page(context, cors.a, cors.b.url("/cors/members/cors-b/"), credentials=False)
    refused(no_credentials)


def test_a_token_streams_without_any_cookie(cors, context):
    src = cors.b.url(f"/cors/token/cors-c/?token={quote(token(cors.a, 'cors-c'))}")
    page = open_page(context, cors.a, src, credentials=False)
    wait_in_page(page, "window.opens === 1")
    assert context.cookies() == []
    publish(cors.b, "cors-c", 3)
    wait_in_page(page, "window.received.length >= 3")
    assert page.evaluate("window.received") == [0, 1, 2]


BAD_TOKENS = {
    "expired": "Subscription token expired.",
    "tampered": "Subscription token tampered with: bad signature.",
    "not granting": "Token does not grant channel 'cors-other'.",
}


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_a_bad_token_is_refused(cors, context, kind):
    value = token(cors.a, "cors-d", expires_in=-1 if kind == "expired" else 60)
    if kind == "tampered":
        value = value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
    channel = "cors-other" if kind == "not granting" else "cors-d"
    src = cors.b.url(f"/cors/token/{channel}/?token={quote(value)}")
    response = httpx.get(src, headers={"Origin": cors.a.base_url}, timeout=10)
    assert (response.status_code, response.text) == (403, BAD_TOKENS[kind])
    assert response.headers["Access-Control-Allow-Origin"] == cors.a.base_url  # the page may read the 403
    refused(open_page(context, cors.a, src, credentials=False))


def test_an_origin_that_is_not_allowed_is_blocked_by_the_browser(cors, context):
    src = cors.b.url(f"/cors/token/cors-e/?token={quote(token(cors.a, 'cors-e'))}")
    # B answers C's origin with the stream, but without Access-Control-Allow-Origin ...
    with httpx.stream("GET", src, headers={"Origin": cors.c.base_url}, timeout=10) as response:
        assert response.status_code == 200
        assert "Access-Control-Allow-Origin" not in response.headers
    # ... so Chromium does not let the page of C read it, while the page of A does.
    blocked = open_page(context, cors.c, src, credentials=False)
    allowed = open_page(context, cors.a, src, credentials=False)
    wait_in_page(allowed, "window.opens === 1")
    wait_in_page(blocked, "window.errors >= 1")
    publish(cors.b, "cors-e", 3)
    wait_in_page(allowed, "window.received.length >= 3")
    assert blocked.evaluate("[window.opens, window.received]") == [0, []]


def test_the_stream_response_has_the_cors_headers(cors):
    headers = {"Origin": cors.a.base_url}
    url = cors.b.url("/cors/members/cors-f/")
    with httpx.Client(timeout=10) as client:
        assert client.get(cors.b.url("/login/carol/")).status_code == 200  # the client keeps the cookie
        with client.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            assert response.headers["Access-Control-Allow-Origin"] == cors.a.base_url
            assert response.headers["Access-Control-Allow-Credentials"] == "true"
        # Another origin gets neither header.
        with client.stream("GET", url, headers={"Origin": cors.c.base_url}) as response:
            assert response.status_code == 200
            assert "Access-Control-Allow-Origin" not in response.headers
            assert "Access-Control-Allow-Credentials" not in response.headers
    # Without the cookie: refused, with the headers, so that the page can tell.
    anonymous = httpx.get(url, headers=headers, timeout=10)
    assert anonymous.status_code == 403
    assert anonymous.headers["Access-Control-Allow-Origin"] == cors.a.base_url


def test_a_reconnection_across_origins_resumes_with_last_event_id(cors, context):
    src = cors.b.url(f"/cors/token/cors-g/?token={quote(token(cors.a, 'cors-g'))}")
    page = open_page(context, cors.a, src, credentials=False)
    wait_in_page(page, "window.opens === 1")
    publish(cors.b, "cors-g", 3)
    wait_in_page(page, "window.received.length >= 3")
    cors.b.process.send_signal(signal.SIGKILL)  # the stream is cut; the browser reconnects after retry
    cors.b.process.wait(timeout=10)
    publish(cors.a, "cors-g", 2)  # stored (the servers share the database) while B is down
    cors.b = start("daphne", env=cors.env, port=cors.b.port)
    # The reconnection is cross-origin too, and carries Last-Event-ID: it gets what it missed.
    wait_in_page(page, "window.received.length >= 5", timeout=20)
    assert page.evaluate("[window.received, window.opens, window.resets]") == [[0, 1, 2, 0, 1], 2, 0]
