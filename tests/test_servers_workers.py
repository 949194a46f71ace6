"""Many worker processes on one database: a publish in another process reaches every worker at once.

``uvicorn --workers 2`` and a daphne beside it, on the embedded default backend, with SQLite (the
Unix-domain socket wake-up) and PostgreSQL (LISTEN/NOTIFY). ``POLL_INTERVAL`` is set to a minute,
so only the wake-up can explain an event that arrives within a second.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest
from httpx_sse import EventSource

from tests import servers
from tests.postgres_server import Postgres, migrate
from tests.postgres_server import environment as pg_environment
from tests.servers import publish_all, start
from tests.sse_client import wait_for

POLL_INTERVAL = 60
DJANGO_SSE = json.dumps({"POLL_INTERVAL": POLL_INTERVAL})
EVENTS = 20
MAX_LATENCY = 2.0  # seconds: generous on a busy 2-core machine, and far below POLL_INTERVAL

pytestmark = pytest.mark.xdist_group("postgres")  # the PostgreSQL server is started once per worker


@dataclass
class Client:
    """One stream, read on a thread: the serving process's pid, then (arrival, id, data) per event."""

    url: str
    pid: int | None = None
    events: list[tuple[float, int, dict]] = field(default_factory=list)
    error: str = ""
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(5, read=None)) as client,
                client.stream("GET", self.url) as response,
            ):
                for sse in EventSource(response).iter_sse():
                    if sse.event == "pid":
                        self.pid = int(sse.data)
                    elif sse.data:
                        self.events.append((time.time(), int(sse.id), json.loads(sse.data)))
                    if self.stop.is_set():
                        return
        except Exception as error:  # reported by the test
            self.error = repr(error)


def sqlite_env() -> dict[str, str]:
    return {**servers.environment(), "SSE_TEST_DJANGO_SSE": DJANGO_SSE}


def connect(url: str, count: int) -> list[Client]:
    clients = [Client(url) for _ in range(count)]
    for client in clients:
        threading.Thread(target=client.run, daemon=True).start()
    assert wait_for(lambda: all(c.pid is not None or c.error for c in clients), timeout=30)
    assert not [c.error for c in clients if c.error]
    return clients


def deliver_across_workers(env: dict[str, str], channel: str) -> None:
    uvicorn = start("uvicorn", extra_args=("--workers", "2"), env=env)
    daphne = start("daphne", env=env)
    clients: list[Client] = []
    try:
        path = f"/workers/{channel}/"
        clients = connect(uvicorn.url(path), 8)
        # The kernel spreads connections over uvicorn's workers: open more until both serve some.
        for _ in range(10):
            if len({c.pid for c in clients}) >= 2:
                break
            clients += connect(uvicorn.url(path), 4)
        assert len({c.pid for c in clients}) == 2, "uvicorn's two workers did not both get clients"
        clients += connect(daphne.url(path), 3)
        assert len({c.pid for c in clients}) == 3

        ids = publish_all(channel, EVENTS, 0.15, env=env)
        assert len(ids) == EVENTS

        # Waiting on state: each client has every event (or the deadline, far below POLL_INTERVAL).
        assert wait_for(lambda: all(len(c.events) >= EVENTS for c in clients), timeout=POLL_INTERVAL / 3), [
            (c.pid, len(c.events)) for c in clients
        ]
        latencies = []
        for client in clients:
            assert [event_id for _, event_id, _ in client.events] == ids, client.pid  # once each, in order
            latencies += [arrival - data["t"] for arrival, _, data in client.events]
        assert max(latencies) < MAX_LATENCY, sorted(latencies)[-5:]
        assert statistics.median(latencies) < 0.25, statistics.median(latencies)
        for server in (uvicorn, daphne):
            assert "Traceback" not in server.log(), server.log()
    finally:
        for client in clients:
            client.stop.set()
        uvicorn.stop()
        daphne.stop()


def test_sqlite_every_worker_gets_every_event_at_once() -> None:
    deliver_across_workers(sqlite_env(), "wk-sqlite")


def test_postgres_every_worker_gets_every_event_at_once(pg: Postgres) -> None:
    migrate(pg, "workers")
    env = {**pg_environment(pg, "workers"), "SSE_TEST_DJANGO_SSE": DJANGO_SSE}
    deliver_across_workers(env, "wk-pg")


def test_postgres_restart_the_listener_comes_back(pg: Postgres) -> None:
    """PostgreSQL restarts under open streams: each process listens again by itself, nothing is lost,
    and the next publishes from another process arrive at once again."""
    migrate(pg, "workers_restart")
    env = {**pg_environment(pg, "workers_restart"), "SSE_TEST_DJANGO_SSE": DJANGO_SSE}
    uvicorn = start("uvicorn", extra_args=("--workers", "2"), env=env)
    clients: list[Client] = []
    try:
        clients = connect(uvicorn.url("/workers/wk-restart/"), 6)
        assert wait_for(lambda: pg.listeners("workers_restart") == len({c.pid for c in clients}), timeout=10)
        before = publish_all("wk-restart", 5, 0.05, env=env)
        assert wait_for(lambda: all(len(c.events) >= 5 for c in clients), timeout=POLL_INTERVAL / 3)

        pg.restart()
        # Waiting on state: every worker's listener is back (each retries once a second).
        assert wait_for(
            lambda: pg.listeners("workers_restart") == len({c.pid for c in clients}), timeout=30
        ), uvicorn.log()
        ids = before + publish_all("wk-restart", 5, 0.05, env=env)
        assert wait_for(lambda: all(len(c.events) >= 10 for c in clients), timeout=POLL_INTERVAL / 3), [
            len(c.events) for c in clients
        ]
        for client in clients:
            assert [event_id for _, event_id, _ in client.events] == ids
        latencies = [arrival - data["t"] for c in clients for arrival, _, data in c.events[5:]]
        assert max(latencies) < MAX_LATENCY, sorted(latencies)[-5:]
        assert "LISTEN connection" in uvicorn.log() or "cannot LISTEN" in uvicorn.log()
    finally:
        for client in clients:
            client.stop.set()
        uvicorn.stop()
