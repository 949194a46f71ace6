"""A client that stops reading is cut off; 50 others get every event in time; memory stays bounded."""

from __future__ import annotations

import json
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.servers import environment, start
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


BUFFER_BYTES = 2_000_000
MEGABYTE_EVENTS = 30


@pytest.fixture(params=["uvicorn", "uvicorn-sse"])
def bytes_limited(request):
    env = {**environment(), "SSE_TEST_DJANGO_SSE": json.dumps({"CLIENT_BUFFER_BYTES": BUFFER_BYTES})}
    server = start(request.param, env=env)
    yield server
    server.stop()


def non_reader(server, path: str, headers: str = "") -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
    return sock


def settled_rss_kb(pid: int, timeout: float = 20.0) -> int:
    """RSS once it has stopped growing (the same, to 256 kB, for 1 s), or at the deadline."""
    deadline, samples = time.monotonic() + timeout, [rss_kb(pid)]
    while time.monotonic() < deadline:
        time.sleep(0.1)
        samples.append(rss_kb(pid))
        if len(samples) > 10 and max(samples[-10:]) - min(samples[-10:]) < 256:
            break
    return samples[-1]


@pytest.mark.parametrize(
    ("size", "count", "per_client"),
    [
        # Each client holds about one replay batch (half its buffer), what is read ahead and the
        # socket's buffer ...
        (10_000, 3000, BUFFER_BYTES + 2_500_000),
        # ... and with events this large, the few copies of the one in progress (encoding, writing).
        (1_000_000, 30, BUFFER_BYTES + 10_000_000),
    ],
    ids=["10kB", "1MB"],
)
def test_replay_to_clients_that_do_not_read_holds_about_their_buffer_in_bytes(
    bytes_limited, size, count, per_client
):
    server, channel = bytes_limited, f"m{uuid.uuid4().hex[:8]}"
    first = httpx.post(server.url(f"/publish/{channel}/?n=1&size=10"), timeout=30).json()["ids"][0]
    batch = min(count, 100)
    for _ in range(count // batch):
        httpx.post(server.url(f"/publish/{channel}/?n={batch}&size={size}"), timeout=60)
    baseline = settled_rss_kb(server.process.pid)
    # Four clients with an old Last-Event-ID that never read: 4 x 30 MB to replay.
    slow = [non_reader(server, f"/channels/{channel}/", f"Last-Event-ID: {first}\r\n") for _ in range(4)]
    try:
        assert wait_for(lambda: sse_stats(server)["subscribers"] == 4, timeout=20)
        growth = settled_rss_kb(server.process.pid) - baseline
        assert growth < 4 * per_client // 1000, f"RSS grew {growth} kB"
        # A client that reads gets all of it, in order.
        seqs = []
        with httpx.stream(
            "GET", server.url(f"/channels/{channel}/"), headers={"Last-Event-ID": first}, timeout=60
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    seqs.append(json.loads(line[5:])["seq"])
                    if len(seqs) == count:
                        break
        assert seqs == list(range(batch)) * (count // batch)
    finally:
        for sock in slow:
            sock.close()
    assert wait_for(lambda: sse_stats(server)["subscribers"] == 0, timeout=20)


def test_live_events_past_the_buffer_in_bytes_cut_a_client_that_does_not_read(bytes_limited):
    server, channel = bytes_limited, f"m{uuid.uuid4().hex[:8]}"
    slow = non_reader(server, f"/channels/{channel}/")
    try:
        assert wait_for(lambda: sse_stats(server)["subscribers"] == 1)
        with ThreadPoolExecutor(1) as pool:
            reading = pool.submit(
                read_events, server.url(f"/channels/{channel}/"), MEGABYTE_EVENTS, timeout=90
            )
            assert wait_for(lambda: sse_stats(server)["subscribers"] == 2)
            for _ in range(MEGABYTE_EVENTS // 5):
                httpx.post(server.url(f"/publish/{channel}/?n=5&size=1000000"), timeout=60)
            received = reading.result(timeout=120)
        # The one that reads got every event; the one that does not was cut with far fewer events
        # waiting than CLIENT_BUFFER (100), by CLIENT_BUFFER_BYTES.
        assert [d["seq"] for d in received.data()] == list(range(5)) * (MEGABYTE_EVENTS // 5)
        assert sse_stats(server)["slow_clients"] == 1
    finally:
        slow.close()
