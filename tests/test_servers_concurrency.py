"""Blocked sync streams must not stall anything else in the same ASGI process."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest

from tests.servers import ASGI_SERVERS
from tests.sse_client import first_chunk_delay, wait_for

STREAMS = 10  # more than asyncio's default executor (min(32, cores + 4) threads) on a small machine


@pytest.mark.parametrize("server_name", ASGI_SERVERS)
def test_ten_blocked_sync_streams_do_not_delay_other_requests(servers, server_name):
    server = servers[server_name]
    tokens = [str(uuid.uuid4()) for _ in range(STREAMS)]
    opened = threading.Barrier(STREAMS + 1, timeout=20)
    release = threading.Event()

    def hold_stream(token: str) -> None:
        # Each generator blocks 4 s in time.sleep() before its first event.
        url = server.url(f"/sync/?n=1&first=4&token={token}")
        with httpx.Client(timeout=20) as client, client.stream("GET", url) as response:
            chunks = response.iter_raw()  # kept: a dropped iterator closes the connection
            next(chunks)  # the preamble: the stream is open and its generator running
            opened.wait()
            release.wait(20)

    holders = [threading.Thread(target=hold_stream, args=(token,)) for token in tokens]
    for holder in holders:
        holder.start()
    try:
        opened.wait()
        assert len(server.stats()["sse_threads"]) == STREAMS
        paths = ["/ping/", "/consumer/"] if server_name == "channels" else ["/ping/"]
        for path in paths:
            began = time.monotonic()
            response = httpx.get(server.url(path), timeout=20)
            took = time.monotonic() - began
            assert response.status_code == 200
            assert took < 1.0, f"{path} took {took:.2f} s while {STREAMS} sync streams were blocked"
        # A new stream opens at once too.
        headers_after, _, _ = first_chunk_delay(server.url("/async/?n=1"))
        assert headers_after < 1.0
    finally:
        release.set()
        for holder in holders:
            holder.join(30)
    # Each thread ends once its blocked item is produced.
    assert wait_for(
        lambda: (
            all(server.stats()["counters"].get(f"finally:{t}") == 1 for t in tokens)
            and not server.stats()["sse_threads"]
        ),
        timeout=10,
    )
