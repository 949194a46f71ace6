"""The PostgreSQL backend: LISTEN/NOTIFY between server processes that share nothing but the database.

``uvicorn --workers 2`` and a daphne beside it stand in for machines: they share no file and no
socket, only PostgreSQL. The backend never polls, and ``POLL_INTERVAL`` is set to a minute as
well, so only a notification can explain an event that arrives at all.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.postgres_server import Postgres, migrate
from tests.postgres_server import environment as pg_environment
from tests.servers import Server, publish_all, start, start_publisher, stop_process
from tests.sse_client import BROWSER_HEADERS, wait_for

BACKEND = "django_sse.backends.postgres.PostgresBackend"
DJANGO_SSE = json.dumps({"BACKEND": BACKEND, "POLL_INTERVAL": 60, "PING_INTERVAL": 2})
DATABASE = "pgbackend"
MAX_LATENCY = 2.0  # seconds: generous on a busy 2-core machine, and there is no poll to fall back on

pytestmark = pytest.mark.xdist_group("postgres-backend")


@dataclass
class Follower:
    """A client on a thread that reconnects with Last-Event-ID whenever its stream ends, as a browser
    does: the pids that served it, and (arrival, id, data) per event."""

    url: str
    pids: set[int] = field(default_factory=set)
    events: list[tuple[float, int, dict]] = field(default_factory=list)
    connections: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Follower:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        last_id = ""
        deadline = time.monotonic() + 120  # bounded: the loop ends by itself
        while not self.stop.is_set() and time.monotonic() < deadline:
            headers = {**BROWSER_HEADERS, **({"Last-Event-ID": last_id} if last_id else {})}
            try:
                with (
                    httpx.Client(timeout=httpx.Timeout(5, read=30)) as client,
                    client.stream("GET", self.url, headers=headers) as response,
                ):
                    self.connections += 1
                    event = ""
                    for line in response.iter_lines():
                        if line.startswith("event: "):
                            event = line[7:]
                        elif line.startswith("id: "):
                            last_id = line[4:]
                        elif line.startswith("data: ") and event == "pid":
                            self.pids.add(int(line[6:]))
                        elif line.startswith("data: "):
                            self.events.append((time.time(), int(last_id), json.loads(line[6:])))
                        elif not line:
                            event = ""
                        if self.stop.is_set():
                            return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)  # the stream ended (or the server was unreachable): reconnect after `retry`


@pytest.fixture(scope="module")
def cluster(pg: Postgres) -> Iterator[tuple[Server, Server, dict[str, str]]]:
    migrate(pg, DATABASE)
    env = {**pg_environment(pg, DATABASE), "SSE_TEST_DJANGO_SSE": DJANGO_SSE}
    uvicorn = start("uvicorn", extra_args=("--workers", "2"), env=env)
    daphne = start("daphne", env=env)
    try:
        yield uvicorn, daphne, env
    finally:
        uvicorn.stop()
        daphne.stop()


def follow(cluster: tuple[Server, Server, dict[str, str]], channel: str) -> list[Follower]:
    """Clients on all three server processes (uvicorn's two workers and daphne), each connected."""
    uvicorn, daphne, _ = cluster
    path = f"/workers/{channel}/"
    clients = [Follower(uvicorn.url(path)).start() for _ in range(8)]
    # The kernel spreads connections over uvicorn's workers: open more until both serve some.
    for _ in range(10):
        assert wait_for(lambda clients=clients: all(c.pids for c in clients), timeout=30)
        if len(set().union(*(c.pids for c in clients))) >= 2:
            break
        clients += [Follower(uvicorn.url(path)).start() for _ in range(4)]
    clients += [Follower(daphne.url(path)).start() for _ in range(3)]
    assert wait_for(lambda: all(c.pids for c in clients), timeout=30)
    assert len(set().union(*(c.pids for c in clients))) == 3, "clients did not reach all three processes"
    return clients


def stored_ids(pg: Postgres, channel: str) -> list[int]:
    rows = pg.query(
        "SELECT id FROM django_sse_storedevent WHERE channel = %s ORDER BY id", DATABASE, params=(channel,)
    )
    return [row[0] for row in rows]


def test_every_client_on_every_process_gets_every_event_at_once(pg: Postgres, cluster) -> None:
    clients = follow(cluster, "pgb-deliver")
    try:
        # One listening connection per process, not per stream.
        assert wait_for(lambda: pg.listeners(DATABASE) == 3, timeout=10), pg.listeners(DATABASE)
        ids = publish_all("pgb-deliver", 20, 0.15, env=cluster[2])
        assert ids == stored_ids(pg, "pgb-deliver")
        # Waiting on state: each client has every event (there is no poll that could deliver them).
        assert wait_for(lambda: all(len(c.events) >= len(ids) for c in clients), timeout=20), [
            len(c.events) for c in clients
        ]
        latencies = []
        for client in clients:
            assert [event_id for _, event_id, _ in client.events] == ids  # once each, in order
            assert client.connections == 1  # nothing ended a stream
            latencies += [arrival - data["t"] for arrival, _, data in client.events]
        assert max(latencies) < MAX_LATENCY, sorted(latencies)[-5:]
        assert statistics.median(latencies) < 0.25, statistics.median(latencies)
        assert pg.listeners(DATABASE) == 3
    finally:
        for client in clients:
            client.stop.set()


def test_postgres_restart_while_publishing_loses_and_repeats_nothing(pg: Postgres, cluster) -> None:
    """PostgreSQL restarts while another process publishes: every process's listener notices, its
    streams end, clients replay from history, and every stored event reaches every client once, in
    order; each process listens again by itself."""
    uvicorn, daphne, env = cluster
    logs = [len(server.log()) for server in (uvicorn, daphne)]
    clients = follow(cluster, "pgb-restart")
    try:
        assert wait_for(lambda: pg.listeners(DATABASE) == 3, timeout=10)
        publisher = start_publisher("pgb-restart", 60, 0.05, env={**env, "SSE_TEST_PUBLISH_RETRY": "1"})
        try:
            assert publisher.stdout is not None
            for _ in range(10):  # publishing is under way
                assert publisher.stdout.readline()
            pg.restart()
            publisher.communicate(timeout=90)
        finally:
            stop_process(publisher)
        assert publisher.returncode == 0
        ids = stored_ids(pg, "pgb-restart")
        assert len(ids) >= 60  # a publish whose commit was cut may have been stored and tried again
        assert wait_for(lambda: all(len(c.events) >= len(ids) for c in clients), timeout=30), [
            len(c.events) for c in clients
        ]
        for client in clients:
            assert [event_id for _, event_id, _ in client.events] == ids  # once each, in order
        assert any(client.connections > 1 for client in clients)  # the outage ended streams
        # Every process listens again by itself.
        assert wait_for(lambda: pg.listeners(DATABASE) == 3, timeout=30)
        for server, start_at, processes in ((uvicorn, logs[0], 2), (daphne, logs[1], 1)):
            log = server.log()[start_at:]
            assert log.count("the PostgreSQL listener is unavailable") == processes, log
            assert log.count("the PostgreSQL listener is back") == processes, log
    finally:
        for client in clients:
            client.stop.set()


def test_publish_after_the_restart_arrives_at_once(pg: Postgres, cluster) -> None:
    """After an outage, the processes are woken by notifications again (not by reconnections)."""
    clients = follow(cluster, "pgb-after")
    try:
        assert wait_for(lambda: pg.listeners(DATABASE) == 3, timeout=30)
        publisher = start_publisher("pgb-after", 5, 0.1, env=cluster[2])
        out, _ = publisher.communicate(timeout=60)
        ids = [int(line.split()[0]) for line in out.splitlines()]
        assert wait_for(lambda: all(len(c.events) >= 5 for c in clients), timeout=20)
        for client in clients:
            assert [event_id for _, event_id, _ in client.events] == ids
            assert client.connections == 1
        latencies = [arrival - data["t"] for c in clients for arrival, _, data in c.events]
        assert max(latencies) < MAX_LATENCY, sorted(latencies)[-5:]
    finally:
        for client in clients:
            client.stop.set()
