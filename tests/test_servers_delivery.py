"""Per-event delivery on real servers, with GZipMiddleware on and a browser's Accept-Encoding."""

from __future__ import annotations

import uuid

import pytest

from tests.servers import EVERY_SERVER
from tests.sse_client import (
    INTERVAL,
    MODES,
    assert_each_event_arrived_when_yielded,
    first_chunk_delay,
    read_events,
    wait_for,
)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("server_name", EVERY_SERVER)
def test_each_event_arrives_when_yielded(servers, server_name, mode):
    server = servers[server_name]
    received = read_events(server.url(f"/{mode}/?n=5&interval={INTERVAL}&token={uuid.uuid4()}"), 5)

    assert received.status == 200
    assert received.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in received.headers, "the stream was compressed"
    assert "content-length" not in received.headers
    assert received.headers["x-accel-buffering"] == "no"
    assert received.headers["cache-control"] == "no-cache"
    assert [sse.id for _, sse in received.events] == ["0", "1", "2", "3", "4"]
    assert_each_event_arrived_when_yielded(received, 5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("server_name", EVERY_SERVER)
def test_headers_and_first_chunk_go_out_before_the_first_event(servers, server_name, mode):
    server = servers[server_name]
    token = uuid.uuid4()
    headers_after, first_chunk_after, chunk = first_chunk_delay(
        server.url(f"/{mode}/?n=1&first=1.5&token={token}")
    )
    # gunicorn's sync worker serves one connection at a time: let this stream end before the next test.
    assert wait_for(lambda: server.stats()["counters"].get(f"finally:{token}") == 1)
    assert headers_after < 0.5
    assert first_chunk_after < 0.5
    # The first chunk is the retry field (or a comment), which opens an EventSource without an event.
    assert chunk.startswith((b"retry: ", b":"))


@pytest.mark.parametrize("server_name", EVERY_SERVER)
def test_django_never_collects_our_streams_into_a_list(servers, server_name):
    server = servers[server_name]
    start = len(server.log())  # the server is shared with other tests (some fail on purpose)
    for mode in MODES:
        read_events(server.url(f"/{mode}/?n=2&interval=0.05"), 2)
    log = server.log()[start:]
    assert "must consume" not in log
    assert "Traceback" not in log
