"""A real nginx in front of daphne and gunicorn (gthread): per-event delivery, and heartbeats keep
idle streams open past ``proxy_read_timeout``.

Two configurations: nginx's defaults made worse (``NGINX_HOSTILE``: gzip of event streams, a 2 s read
timeout, and, on Debian's nginx 1.22, HTTP/1.0 to the upstream), and the same with the location block
that docs/deployment/nginx.rst shows, read from that page.
"""

from __future__ import annotations

import os
import re
import textwrap
import uuid

import httpx
import pytest

from tests.servers import ROOT, Nginx, Started, nginx_binary, start_nginx
from tests.sse_client import (
    INTERVAL,
    MODES,
    assert_each_event_arrived_when_yielded,
    first_chunk_delay,
    read_events,
    wait_for,
)

UPSTREAMS = ["daphne", "gunicorn-gthread"]
CONFIGS = ["defaults", "documented"]
NGINX_DOCS = ROOT / "docs" / "deployment" / "nginx.rst"


def documented_snippet(name: str) -> str:
    """The ``code-block`` with ``:name: <name>`` in docs/deployment/nginx.rst, dedented."""
    lines = NGINX_DOCS.read_text().splitlines()
    start = lines.index(f"   :name: {name}") + 1
    block = []
    for line in lines[start:]:
        if line and not line.startswith("   "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip()


def documented_config(upstream_port: int) -> tuple[str, str]:
    """The documented ``upstream`` block (for the ``http`` block) and ``location`` (for ``server``)."""
    upstream = documented_snippet("nginx-upstream").replace("127.0.0.1:8000", f"127.0.0.1:{upstream_port}")
    location = documented_snippet("nginx-events")
    # The test project's streams are not under /events/.
    location, count = re.subn(r"^location /events/ \{", "location / {", location)
    assert count == 1, location
    return upstream, location


def require_nginx() -> str:
    binary = nginx_binary()
    if binary is None:
        # Never a skip: CI installs nginx (.ci/setup), and a missing one must fail the run.
        pytest.fail("nginx is not installed: apt-get install -y nginx (.ci/setup does it)")
    return binary


def start_proxy(upstream_port: int, config: str) -> Nginx:
    """nginx in front of ``127.0.0.1:upstream_port``: with its defaults made worse, or as documented."""
    require_nginx()
    if config == "documented":
        upstream, location = documented_config(upstream_port)
        return start_nginx(upstream_port, http=upstream, server=location)
    return start_nginx(upstream_port)


class Proxies:
    """``proxies[server_name, config]``: one nginx per (upstream server, configuration), from the
    session's ``started`` (started on first use, stopped at the end of the session)."""

    def __init__(self, started: Started) -> None:
        self._started = started

    def __getitem__(self, key: tuple[str, str]) -> Nginx:
        server_name, config = key
        port = self._started.server(server_name).port
        return self._started.shared(("nginx", server_name, config), lambda: start_proxy(port, config))


@pytest.fixture(scope="session")
def proxies(started: Started) -> Proxies:
    return Proxies(started)


def test_the_documented_snippets_are_found():
    upstream, location = documented_config(1234)
    assert "server 127.0.0.1:1234;" in upstream
    assert "proxy_buffering off;" in location
    assert "proxy_http_version 1.1;" in location


def test_ci_has_nginx():
    if os.environ.get("CI"):
        assert nginx_binary() is not None, "CI must install nginx (.ci/setup)"
    require_nginx()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("server_name", UPSTREAMS)
def test_each_event_arrives_when_yielded_through_nginx(servers, proxies, server_name, config, mode):
    proxy = proxies[server_name, config]
    received = read_events(proxy.url(f"/{mode}/?n=5&interval={INTERVAL}&token={uuid.uuid4()}"), 5)

    assert received.status == 200
    assert received.headers["content-type"].startswith("text/event-stream")
    assert received.headers["server"].startswith("nginx")
    assert received.headers["cache-control"] == "no-cache"
    assert "x-accel-buffering" not in received.headers  # nginx acts on it and removes it
    if config == "documented":
        assert "content-encoding" not in received.headers
    else:
        # gzip_types includes text/event-stream: compressed, yet flushed after each event.
        assert received.headers["content-encoding"] == "gzip"
    assert_each_event_arrived_when_yielded(received, 5)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("server_name", UPSTREAMS)
def test_headers_and_first_chunk_pass_nginx_before_the_first_event(servers, proxies, server_name, config):
    proxy = proxies[server_name, config]
    token = uuid.uuid4()
    headers_after, first_chunk_after, chunk = first_chunk_delay(
        proxy.url(f"/async/?n=1&first=1.5&token={token}")
    )
    assert headers_after < 0.5
    assert first_chunk_after < 0.5
    if config == "documented":
        assert chunk.startswith(b"retry: ")
    server = servers[server_name]
    assert wait_for(lambda: server.stats()["counters"].get(f"finally:{token}") == 1)


@pytest.mark.parametrize("mode", ["sync/fast-heartbeat", "async/fast-heartbeat"])
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("server_name", UPSTREAMS)
def test_heartbeats_keep_an_idle_stream_open_past_proxy_read_timeout(
    servers, proxies, server_name, config, mode
):
    # 3 s between events, proxy_read_timeout 2 s: only the 0.5 s heartbeats keep nginx reading.
    proxy = proxies[server_name, config]
    received = read_events(proxy.url(f"/{mode}/?n=2&interval=3"), 2, timeout=10)
    assert [d["i"] for d in received.data()] == [0, 1]
    assert received.events[1][0] - received.events[0][0] > 2.5


@pytest.mark.parametrize("server_name", UPSTREAMS)
def test_without_heartbeats_nginx_cuts_an_idle_stream(servers, proxies, server_name):
    # The control for the test above: with the 15 s heartbeat, nginx gives up after 2 s.
    proxy = proxies[server_name, "defaults"]
    with pytest.raises(httpx.RemoteProtocolError):  # no terminating chunk
        read_events(proxy.url("/sync/?n=2&interval=3"), 2, timeout=10)
    assert wait_for(lambda: "upstream timed out" in proxy.log(), timeout=5)
