"""What an open stream costs, counted from outside the server: threads, database files, limits.

With the middleware stack `startproject` writes (sessions, auth, messages...) in front, and a
permission check that reads ``request.user``, hundreds of open channel streams hold a small constant
number of threads and no database connection; uvicorn on uvloop and on asyncio, and daphne.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.servers import Server, environment, start
from tests.sse_client import read_events, wait_for
from tests.streams_client import close_all, open_files, open_streams, read_until, sse_stats, threads

STREAMS = 200
#: Threads a server process may have with any number of idle streams: the server's own, the
#: dispatcher, the worker pool (4) and Django's/asgiref's few.
MAX_THREADS = 20

SERVERS = {
    "uvicorn-uvloop": ("uvicorn", ("--loop", "uvloop")),
    "uvicorn-sse": ("uvicorn-sse", ("--loop", "uvloop")),
    "uvicorn-asyncio": ("uvicorn", ("--loop", "asyncio")),
    "daphne": ("daphne", ()),
}


def _start(name: str, **django_sse: object) -> Server:
    kind, args = SERVERS[name]
    env = {
        **environment(),
        "SSE_TEST_MIDDLEWARE": "startproject",
        "SSE_TEST_DJANGO_SSE": json.dumps(django_sse),
    }
    return start(kind, extra_args=args, env=env)


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request) -> Iterator[Server]:
    started = _start(request.param)
    try:
        yield started
    finally:
        started.stop()


pytestmark = pytest.mark.xdist_group("cost")


def test_open_streams_hold_no_thread_and_no_database_connection(server):
    channel = f"c{uuid.uuid4().hex[:8]}"
    pid = server.process.pid
    database = environment()["SSE_TEST_DB"]
    # A session cookie, so that request.user really reads the session table.
    sockets = open_streams(server.port, f"/private/{channel}/", STREAMS, headers="Cookie: sessionid=x\r\n")
    try:
        assert wait_for(lambda: sse_stats(server.base_url)["subscribers"] == STREAMS, timeout=60)
        held = threads(pid)
        assert held <= MAX_THREADS, f"{held} threads for {STREAMS} open streams"
        # SQLite opens the file, its -wal and -shm per connection: the dispatcher's one at most.
        assert open_files(pid, database) <= 3
        httpx.post(server.url(f"/publish/{channel}/"), timeout=10)
        assert read_until(sockets, b'"seq": 0') == STREAMS
    finally:
        close_all(sockets)
    assert wait_for(lambda: sse_stats(server.base_url)["open_streams"] == 0, timeout=30)
    assert threads(pid) <= MAX_THREADS
    # Nor does anything stay open on the database once they have gone (one connection per stream
    # would be hundreds of descriptors; SQLite may keep one closed descriptor for reuse).
    assert open_files(pid, database) <= 6


def test_streams_dropped_at_any_moment_leave_nothing_registered(server):
    channel = f"c{uuid.uuid4().hex[:8]}"
    path = f"/private/{channel}/"
    before = sse_stats(server.base_url)["slow_clients"]
    # Gone before the response starts (during middleware, hooks or subscribing) ...
    close_all(open_streams(server.port, path, 150, headers="Last-Event-ID: 0\r\n"))
    # ... and right after the headers and the first bytes (during the replay or live).
    early = open_streams(server.port, path, 150, headers="Last-Event-ID: 0\r\n")
    assert read_until(early, b"retry:") == 150
    close_all(early)
    assert wait_for(lambda: sse_stats(server.base_url)["open_streams"] == 0, timeout=30)
    assert wait_for(lambda: sse_stats(server.base_url)["subscribers"] == 0, timeout=30)
    # Nobody is left to fall behind: CLIENT_BUFFER + 1 events cut no "slow client".
    httpx.post(server.url(f"/publish/{channel}/?n=101"), timeout=30)
    assert sse_stats(server.base_url)["slow_clients"] == before
    assert "slow client" not in server.log()


def test_heartbeats_survive_a_late_event_loop(server):
    # uvloop's call_at() returns a plain Handle (no when()) for a time already past: the heartbeat
    # must not depend on it. Block the loop past the heartbeat's deadline a few times.
    url = server.url("/async/heartbeat-0.1/?n=-1&interval=0.05")
    with httpx.Client(timeout=30) as client, client.stream("GET", url) as response:
        chunks = response.iter_raw()
        next(chunks)
        for _ in range(3):
            client.get(server.url("/block-loop/?ms=300"))
            seen = b""
            while seen.count(b"data:") < 5:
                seen += next(chunks)
    log = server.log()
    assert "Traceback" not in log and "AttributeError" not in log, log


@pytest.fixture(scope="module")
def limited() -> Iterator[Server]:
    server = _start("uvicorn-uvloop", MAX_STREAMS=4, MAX_SYNC_STREAMS=2)
    try:
        yield server
    finally:
        server.stop()


def test_max_streams_refuses_the_next_with_503_and_spares_the_open_ones(limited):
    channel = f"c{uuid.uuid4().hex[:8]}"
    sockets = open_streams(limited.port, f"/channels/{channel}/", 4)
    try:
        assert wait_for(lambda: sse_stats(limited.base_url)["open_streams"] == 4)
        refusals = [httpx.get(limited.url(f"/channels/{channel}/"), timeout=10) for _ in range(2)]
        for refused in refusals:
            assert refused.status_code == 503
            assert refused.headers["Retry-After"] == "1"  # RETRY is 200 ms for that view: at least 1 s
            assert refused.headers["Content-Type"].startswith("text/plain")
            assert "MAX_STREAMS" in refused.text
        assert sse_stats(limited.base_url)["refused"] >= 2
        httpx.post(limited.url(f"/publish/{channel}/"), timeout=10)
        assert read_until(sockets, b'"seq": 0') == 4
    finally:
        close_all(sockets)
    assert wait_for(lambda: sse_stats(limited.base_url)["open_streams"] == 0)
    assert read_events(limited.url("/async/?n=2&interval=0"), 2).status == 200
    # Logged once for the burst, not once per refusal.
    assert limited.log().count("refusing new streams with 503") == 1


def test_max_sync_streams_bounds_the_threads_of_sync_streams(limited):
    sockets = open_streams(limited.port, "/sync/?n=-1&interval=0.1", 2)
    try:
        assert wait_for(lambda: len(httpx.get(limited.url("/stats/"), timeout=10).json()["sse_threads"]) == 2)
        refused = httpx.get(limited.url("/sync/?n=-1"), timeout=10)
        assert refused.status_code == 503 and "MAX_SYNC_STREAMS" in refused.text
        # An async stream needs no thread: still served.
        assert read_events(limited.url("/async/?n=2&interval=0"), 2).status == 200
    finally:
        close_all(sockets)
    assert wait_for(lambda: httpx.get(limited.url("/stats/"), timeout=10).json()["sse_threads"] == [])
