"""Many processes through Redis: every client on every process gets every event, in order, once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.redis_server import start_redis
from tests.servers import ROOT, environment, start
from tests.sse_client import BROWSER_HEADERS, wait_for

SETTINGS = "tests.project.settings_redis"


@pytest.fixture(scope="module")
def redis():
    server = start_redis()
    previous = os.environ.get("SSE_TEST_REDIS_URL")
    os.environ["SSE_TEST_REDIS_URL"] = server.url
    yield server
    server.stop()
    if previous is None:
        del os.environ["SSE_TEST_REDIS_URL"]
    else:
        os.environ["SSE_TEST_REDIS_URL"] = previous


@pytest.fixture(scope="module")
def cluster(redis):
    """uvicorn with 2 worker processes and a daphne process, sharing Redis and the database."""
    servers = [
        start("uvicorn", settings=SETTINGS, extra_args=("--workers", "2")),
        start("daphne", settings=SETTINGS),
    ]
    yield servers
    for server in servers:
        server.stop()


def publisher(channel: str, count: int, interval: float) -> subprocess.Popen[str]:
    """A third process publishing {"seq": i}; PublishError is reported and publishing goes on."""
    code = (
        "import os, sys, time, django; django.setup()\n"
        "from django_sse import publish, PublishError\n"
        "channel, count, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])\n"
        "for seq in range(count):\n"
        "    try:\n"
        "        print(publish(channel, {'seq': seq}).id, 'ok', flush=True)\n"
        "    except PublishError as exc:\n"
        "        print(exc.event.id, 'stored-only', flush=True)\n"
        "    time.sleep(interval)\n"
    )
    env = {**environment(SETTINGS)}
    return subprocess.Popen(
        [sys.executable, "-c", code, channel, str(count), str(interval)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def follow(
    url: str, expected: int, deadline: float, pids: set[str] | None = None, connected: list[str] | None = None
) -> list[tuple[str, int]]:
    """A client that reconnects with Last-Event-ID whenever its stream ends, like a browser.

    ``connected`` gets the client's url once its first stream has its position (the ``id:`` line).
    """
    received: list[tuple[str, int]] = []
    last_id = None
    pids = set() if pids is None else pids
    while len(received) < expected and time.monotonic() < deadline:
        headers = {**BROWSER_HEADERS, **({"Last-Event-ID": last_id} if last_id else {})}
        try:
            with httpx.Client(timeout=10) as client, client.stream("GET", url, headers=headers) as response:
                pids.add(response.headers["x-server-pid"])
                for line in response.iter_lines():
                    if line.startswith("id: "):
                        if last_id is None and connected is not None:
                            connected.append(url)
                        last_id = line[4:]
                    elif line.startswith("data: "):
                        received.append((last_id or "", json.loads(line[6:])["seq"]))
                        if len(received) == expected:
                            break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # the stream ended (or the server was unreachable): reconnect, as a browser does
    return received


def subscribers(server) -> int:
    return httpx.get(server.url("/sse-stats/"), timeout=10).json()["subscribers"]


def test_every_client_on_every_process_gets_every_event_once_in_order(cluster):
    uvicorn, daphne = cluster
    channel = f"r{uuid.uuid4().hex[:10]}"
    urls = [uvicorn.url(f"/channels/{channel}/")] * 8 + [daphne.url(f"/channels/{channel}/")] * 2
    pids: set[str] = set()
    connected: list[str] = []
    with ThreadPoolExecutor(len(urls)) as pool:
        deadline = time.monotonic() + 60
        clients = [pool.submit(follow, url, 60, deadline, pids, connected) for url in urls]
        assert wait_for(lambda: len(connected) == len(urls), timeout=30)
        process = publisher(channel, 60, 0.02)
        assert process.wait(timeout=60) == 0
        results = [client.result(timeout=90) for client in clients]
    assert process.stdout is not None
    with process.stdout:
        published = [line.split() for line in process.stdout.read().splitlines()]
    expected = [(event_id, seq) for seq, (event_id, status) in enumerate(published)]
    assert all(status == "ok" for _, status in published)
    assert len(pids) == 3, f"clients reached only server processes {pids}"  # 2 uvicorn workers + daphne
    for received in results:
        assert received == expected


def test_redis_restart_while_publishing_loses_and_repeats_nothing(redis, cluster):
    uvicorn, daphne = cluster
    channel = f"r{uuid.uuid4().hex[:10]}"
    urls = [uvicorn.url(f"/channels/{channel}/")] * 3 + [daphne.url(f"/channels/{channel}/")] * 2
    count = 120
    connected: list[str] = []
    logs = [len(server.log()) for server in cluster]
    with ThreadPoolExecutor(len(urls)) as pool:
        deadline = time.monotonic() + 90
        clients = [pool.submit(follow, url, count, deadline, None, connected) for url in urls]
        assert wait_for(lambda: len(connected) == len(urls), timeout=30)
        process = publisher(channel, count, 0.05)  # 6 s of publishing
        assert process.stdout is not None
        published = [process.stdout.readline().split() for _ in range(20)]  # publishing is under way
        redis.stop()  # by its PID
        while published[-1][1] != "stored-only":  # the publisher has seen the outage
            published.append(process.stdout.readline().split())
        for _ in range(10):  # ... for a while: every server process notices it too
            published.append(process.stdout.readline().split())
        restarted = start_redis(port=redis.port)
        redis.process = restarted.process
        assert process.wait(timeout=60) == 0
        with process.stdout:
            published += [line.split() for line in process.stdout.read().splitlines()]
        results = [client.result(timeout=120) for client in clients]
    expected = [(event_id, seq) for seq, (event_id, _) in enumerate(published)]
    for received in results:
        assert received == expected
    # One warning per process when the outage starts and one when it ends; no traceback.
    uvicorn_log, daphne_log = (server.log()[start:] for server, start in zip(cluster, logs, strict=True))
    for log, processes in ((uvicorn_log, 2), (daphne_log, 1)):
        assert log.count("the channel layer is unavailable") == processes, log
        assert log.count("the channel layer is reachable again") == processes, log
        assert "Traceback" not in log, log


def _open_streams(server, channel: str, count: int):
    """``count`` idle streams held open by raw sockets (cheap enough for hundreds)."""
    import socket

    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(f"GET /channels/{channel}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        sockets.append(sock)
    return sockets


def test_redis_traffic_per_publish_does_not_grow_with_clients(monkeypatch):
    redis = start_redis()  # of its own: other tests' servers ping theirs
    monkeypatch.setenv("SSE_TEST_REDIS_URL", redis.url)
    monkeypatch.setenv("SSE_TEST_PING_INTERVAL", "60")  # no liveness pings inside the measurement
    server = start("uvicorn", settings=SETTINGS)
    per_publish = {}
    try:
        for clients in (10, 500):
            channel = f"r{uuid.uuid4().hex[:10]}"
            sockets = _open_streams(server, channel, clients)
            try:
                assert wait_for(lambda n=clients: subscribers(server) == n, timeout=30)
                before = redis.publishes()
                for _ in range(5):
                    httpx.post(server.url(f"/publish/{channel}/?n=10"), timeout=30)
                per_publish[clients] = (redis.publishes() - before) / 50
            finally:
                for sock in sockets:
                    sock.close()
            assert wait_for(lambda: subscribers(server) == 0, timeout=30)
    finally:
        server.stop()
        redis.stop()
    # One PUBLISH per event, whether 10 or 500 clients watch it.
    assert per_publish == {10: 1.0, 500: 1.0}


def test_publish_raises_publish_error_after_storing_when_redis_is_unreachable():
    # In-process, against a port where nothing listens: the event is stored, then PublishError.
    code = (
        "import django; django.setup()\n"
        "from django.db import transaction\n"
        "from django_sse import PublishError, publish\n"
        "from django_sse.models import StoredEvent\n"
        "try:\n"
        "    publish('c', 'x')\n"
        "except PublishError as exc:\n"
        "    print('raised', StoredEvent.objects.filter(id=exc.event.id).exists())\n"
        "with transaction.atomic():\n"
        "    event = publish('c', 'in a transaction')\n"
        "    transaction.on_commit(lambda: print('later callback ran'))\n"
        "print('committed', StoredEvent.objects.filter(id=event.id).exists())\n"
    )
    env = {
        **environment(SETTINGS),
        "SSE_TEST_REDIS_URL": "redis://127.0.0.1:9/0",
        "SSE_TEST_PING_INTERVAL": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.splitlines() == ["raised True", "later callback ran", "committed True"], (
        result.stderr
    )
