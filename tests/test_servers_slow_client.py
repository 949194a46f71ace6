"""A client that stops reading is cut off; 50 others get every event in time; memory stays bounded."""

from __future__ import annotations

import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.servers import start
from tests.sse_client import read_events, wait_for

NORMAL_CLIENTS = 50
EVENTS = 100  # on the channel everybody reads
BIG_EVENTS = 600  # 50 kB each, on a channel only the slow client reads: 30 MB if it were all kept


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def sse_stats(server) -> dict:
    return httpx.get(server.url("/sse-stats/"), timeout=10).json()


@pytest.fixture
def uvicorn_server():
    # A server of its own, so that its memory and counters are this test's alone.
    server = start("uvicorn")
    yield server
    server.stop()


def test_slow_client_is_disconnected_and_nobody_else_waits(uvicorn_server):
    server = uvicorn_server
    shared, big = f"s{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"

    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", server.port))
    slow.sendall(f"GET /channels/{shared},{big}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    assert wait_for(lambda: sse_stats(server)["subscribers"] == 1)

    with ThreadPoolExecutor(NORMAL_CLIENTS) as pool:
        normal = [
            pool.submit(read_events, server.url(f"/channels/{shared}/"), EVENTS, timeout=60)
            for _ in range(50)
        ]
        assert wait_for(lambda: sse_stats(server)["subscribers"] == NORMAL_CLIENTS + 1, timeout=20)
        baseline = rss_kb(server.process.pid)
        for half in range(2):
            for _ in range(BIG_EVENTS // 2 // 50):
                httpx.post(server.url(f"/publish/{big}/?n=50&size=50000"), timeout=30)
            if half == 0:
                first_half = rss_kb(server.process.pid)
        second_half = rss_kb(server.process.pid)
        for _ in range(EVENTS // 10):
            httpx.post(server.url(f"/publish/{shared}/?n=10"), timeout=30)
            time.sleep(0.02)
        results = [future.result(timeout=60) for future in normal]

    # Every normal client got every event, in order, each soon after it was published.
    for received in results:
        assert [d["seq"] for d in received.data()] == list(range(10)) * (EVENTS // 10)
        lags = [arrived - sse.json()["t"] for arrived, sse in received.events]
        assert max(lags) < 2.0
    # The slow client was counted and cut off: reading now drains what was sent, then the end.
    assert sse_stats(server)["slow_clients"] == 1
    slow.settimeout(10)
    drained = 0
    while chunk := slow.recv(65536):
        drained += len(chunk)
    slow.close()
    assert drained < 6_000_000, "the slow client was sent (or buffered) everything"
    # Publishing the second 15 MB to it grew the server's memory by far less (its buffer holds at
    # most CLIENT_BUFFER = 100 events, 5 MB, and is emptied when it overflows).
    growth = second_half - first_half
    assert growth < 8_000, f"RSS grew {growth} kB over {BIG_EVENTS // 2} events of 50 kB (from {baseline} kB)"
