"""SIGTERM ends open channel streams cleanly, so the server can exit and clients reconnect and replay."""

from __future__ import annotations

import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.servers import start
from tests.sse_client import read_events, wait_for


@pytest.mark.parametrize("server_name", ["uvicorn", "daphne", "gunicorn-gthread"])
def test_sigterm_ends_streams_cleanly_and_the_server_exits(server_name):
    server = start(server_name)
    try:
        with ThreadPoolExecutor(1) as pool:
            stream = pool.submit(
                read_events, server.url(f"/channels/c{uuid.uuid4().hex[:8]}/"), 1, timeout=30
            )
            assert wait_for(lambda: httpx.get(server.url("/sse-stats/")).json()["subscribers"] == 1)
            sent = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            received = stream.result(timeout=20)  # raises if the stream was cut instead of ended
            ended_after = time.monotonic() - sent
        assert received.events == []
        assert ended_after < 5
        server.process.wait(timeout=15)
        assert time.monotonic() - sent < 15
    finally:
        server.stop()
