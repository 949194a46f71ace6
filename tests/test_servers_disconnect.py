"""When the client goes away, the generator is closed and nothing is left behind."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.servers import ASGI_SERVERS, EVERY_SERVER, WSGI_SERVERS
from tests.sse_client import MODES, first_chunk_delay, read_events, wait_for


def assert_cleaned_up(server, token: str, *, timeout: float = 10.0) -> None:
    """The generator's finally ran, no stream thread is left, every request was finished."""

    def clean() -> bool:
        stats = server.stats()
        counters = stats["counters"]
        # The /stats/ request itself has started but not finished.
        return (
            counters.get(f"finally:{token}") == 1
            and stats["sse_threads"] == []
            and counters["request_finished"] == counters["request_started"] - 1
        )

    assert wait_for(clean, timeout=timeout), f"not cleaned up: {server.stats()}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("server_name", EVERY_SERVER)
def test_endless_stream_is_closed_when_client_leaves(servers, server_name, mode):
    server = servers[server_name]
    token = str(uuid.uuid4())
    received = read_events(server.url(f"/{mode}/?n=-1&interval=0.3&token={token}"), 2)
    assert len(received.events) == 2
    assert_cleaned_up(server, token)


def request_ended(server) -> bool:
    counters = server.stats()["counters"]
    return counters["request_finished"] == counters["request_started"] - 1


@pytest.mark.parametrize("mode", ["sync/fast-heartbeat", "async/fast-heartbeat"])
@pytest.mark.parametrize("server_name", WSGI_SERVERS)
def test_wsgi_notices_a_silent_client_leaving_at_a_heartbeat(servers, server_name, mode):
    # No event for 3 s: only the 0.5 s heartbeat writes can tell the server the client has gone.
    server = servers[server_name]
    token = str(uuid.uuid4())
    left = time.monotonic()
    first_chunk_delay(server.url(f"/{mode}/?n=-1&first=3&token={token}"))
    assert wait_for(lambda: request_ended(server), timeout=5)
    # A failed write is noticed within a few heartbeats, long before the first event (3 s).
    assert time.monotonic() - left < 2.0
    if mode.startswith("async"):
        assert_cleaned_up(server, token, timeout=0.5)
    else:
        # A sync generator is closed once the item in progress (its 3 s sleep) is produced.
        assert server.stats()["counters"].get(f"finally:{token}") is None
        assert_cleaned_up(server, token, timeout=5)
        assert time.monotonic() - left > 2.5


@pytest.mark.parametrize("server_name", ASGI_SERVERS)
def test_async_stream_waiting_for_an_event_is_closed_at_once(servers, server_name):
    server = servers[server_name]
    token = str(uuid.uuid4())
    first_chunk_delay(server.url(f"/async/?n=-1&first=60&token={token}"))
    assert_cleaned_up(server, token, timeout=2)


@pytest.mark.parametrize("server_name", ASGI_SERVERS)
def test_blocked_sync_stream_ends_the_request_at_once_and_its_thread_after_the_item(servers, server_name):
    server = servers[server_name]
    token = str(uuid.uuid4())
    left = time.monotonic()
    first_chunk_delay(server.url(f"/sync/?n=-1&first=3&token={token}"))

    assert wait_for(lambda: request_ended(server), timeout=1.5), (
        "the request did not end while the generator was blocked"
    )
    assert server.stats()["counters"].get(f"finally:{token}") is None  # still producing its first item
    assert_cleaned_up(server, token, timeout=6)
    assert time.monotonic() - left > 2.5  # closed only once the item in progress was produced
