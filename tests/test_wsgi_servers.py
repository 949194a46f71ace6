"""The other WSGI servers, for real: uWSGI, waitress, and ``runserver`` without daphne (wsgiref).

Per-event delivery, first chunk and disconnects of every server, these included, are in the
core server tests (tests/test_servers_delivery.py, tests/test_servers_disconnect.py).

uWSGI comes from PyPI's ``pyuwsgi``: the same uWSGI 2.0 core as the ``uwsgi`` package, as a
prebuilt wheel that runs in this venv's interpreter (no compiler, and not Debian's
uwsgi-plugin-python3, which embeds the system Python and not the venv's).
"""

from __future__ import annotations

import contextlib
import time

import httpx
import pytest

from tests.servers import MORE_WSGI_SERVERS, start
from tests.sse_client import (
    read_events,
    wait_for,
)


@pytest.mark.parametrize("server_name", MORE_WSGI_SERVERS)
def test_how_each_server_frames_the_stream(servers, server_name):
    received = read_events(servers[server_name].url("/async/?n=1"), 1)
    framing = (received.headers.get("transfer-encoding"), received.headers.get("connection"))
    # waitress: chunked; uWSGI's --http-socket and wsgiref: the body ends when the connection closes.
    assert (
        framing
        == {
            "waitress": ("chunked", "close"),
            "uwsgi": (None, None),
            "runserver-wsgi": (None, "close"),
        }[server_name]
    )


def test_runserver_without_daphne_is_wsgi(servers):
    server = servers["runserver-wsgi"]
    received = read_events(server.url("/async/?n=1"), 1)
    assert received.headers["server"].startswith("WSGIServer/")
    assert "Starting development server" in server.log()
    assert "ASGI/Daphne" not in server.log()


# The documented limitations, and the settings that lift them.


def _ping_took(server, timeout: float) -> float | None:
    """Seconds /ping/ took, or None if it did not answer within ``timeout``."""
    began = time.monotonic()
    try:
        httpx.get(server.url("/ping/"), timeout=timeout).raise_for_status()
    except httpx.TimeoutException:
        return None
    return time.monotonic() - began


@pytest.mark.parametrize(
    ("server_name", "args", "streams"),
    [
        ("waitress", ("--threads=2",), 2),  # waitress: --threads (default 4) requests at once
        ("uwsgi", ("--threads", "1"), 1),  # uWSGI: processes x threads requests at once
    ],
)
def test_open_streams_take_every_thread_and_requests_wait(server_name, args, streams):
    server = start(server_name, extra_args=args)
    try:
        with httpx.Client(timeout=10) as client, contextlib.ExitStack() as opened:
            readers = []  # kept: an iterator dropped half-way closes its connection
            for _ in range(streams):
                response = opened.enter_context(client.stream("GET", server.url("/async/?n=-1&interval=0.3")))
                readers.append(response.iter_raw())
                next(readers[-1])
            # Every thread streams: a plain request waits for one of them.
            assert _ping_took(server, 1.5) is None
        # A closed stream is noticed at its next write (0.3 s), and its thread is free again.
        took = _ping_took(server, 5)
        assert took is not None and took < 3
    finally:
        server.stop()


def test_uwsgi_harakiri_kills_a_stream():
    # Like gunicorn's sync worker timeout: uWSGI's harakiri ends any request that runs longer.
    server = start("uwsgi", extra_args=("--harakiri", "2"))
    try:
        received = read_events(server.url("/sync/?n=12&interval=0.4"), 12, timeout=10)
        # 4.8 s of events; the body is close-delimited, so the cut looks like an end: count what arrived.
        assert 3 <= len(received.events) < 12
        assert wait_for(lambda: "HARAKIRI" in server.log(), timeout=5)
    finally:
        server.stop()
