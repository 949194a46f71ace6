"""The real PostgreSQL of tests/postgres_server.py: a server process publishes into it, and it restarts."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.postgres_server import Postgres, environment, migrate
from tests.servers import start, start_publisher
from tests.sse_client import wait_for
from tests.streams_client import close_all, open_streams, read_until, sse_stats

# One PostgreSQL for the whole module, on one xdist worker.
pytestmark = pytest.mark.xdist_group("postgres")


@pytest.mark.parametrize(
    ("pool", "idle_connections"),
    [
        # CONN_MAX_AGE = 0: Django closes the request's connection when the request finishes.
        pytest.param(False, 0, id="direct"),
        # Django's psycopg pool keeps the connection it returned (min_size 0, but max_idle is 10 min).
        pytest.param(True, 1, id="pool"),
    ],
)
def test_uvicorn_publishes_into_postgres(pg: Postgres, pool: bool, idle_connections: int) -> None:
    dbname = f"publish_{'pool' if pool else 'direct'}"
    migrate(pg, dbname)
    server = start("uvicorn", env=environment(pg, dbname, pool=pool))
    try:
        assert pg.client_connections(dbname) == 0
        response = httpx.post(server.url("/publish/pg-channel/?n=3"), timeout=10)
        assert response.status_code == 200, server.log()
        ids = [int(i) for i in response.json()["ids"]]

        rows = pg.query("SELECT id, channel, data FROM django_sse_storedevent ORDER BY id", dbname)
        assert [row[0] for row in rows] == ids
        assert [row[1] for row in rows] == ["pg-channel"] * 3
        assert [json.loads(row[2])["seq"] for row in rows] == [0, 1, 2]

        # A backend leaves pg_stat_activity a moment after its client closes the connection.
        assert wait_for(lambda: pg.client_connections(dbname) == idle_connections, timeout=5), (
            pg.client_connections(dbname)
        )
        assert server.process.poll() is None, server.log()
    finally:
        server.stop()
    assert wait_for(lambda: pg.client_connections(dbname) == 0, timeout=5)


def test_restart_keeps_the_data(pg: Postgres) -> None:
    pg.create_database("restart")
    pg.query("CREATE TABLE kept (n integer)", "restart")
    pg.query("INSERT INTO kept SELECT generate_series(1, 100)", "restart")
    port, pid = pg.port, pg.process.pid

    pg.restart()

    assert (pg.port, pg.process.poll()) == (port, None)
    assert pg.process.pid != pid
    assert pg.query("SELECT count(*), sum(n) FROM kept", "restart") == [(100, 5050)]


def _startproject(pg: Postgres, dbname: str, *, pool: bool) -> dict[str, str]:
    return {**environment(pg, dbname, pool=pool), "SSE_TEST_MIDDLEWARE": "startproject"}


@pytest.mark.parametrize("server_kind", ["uvicorn", "daphne"])
def test_idle_streams_hold_no_database_connection(pg: Postgres, server_kind: str) -> None:
    dbname = f"idle_{server_kind}"
    migrate(pg, dbname)
    server = start(server_kind, env=_startproject(pg, dbname, pool=False))
    first = httpx.post(server.url("/publish/idle/"), timeout=10).json()["ids"][0]
    # Each stream starts with a session lookup (request.user) and a replay from Last-Event-ID.
    headers = f"Cookie: sessionid=x\r\nLast-Event-ID: {first}\r\n"
    sockets = open_streams(server.port, "/private/idle/", 50, headers=headers)
    try:
        assert wait_for(lambda: sse_stats(server.base_url)["subscribers"] == 50, timeout=30)
        # Only the dispatcher keeps one (it reads new events for every stream of the process),
        # and the listener one more (other processes' publishes wake the dispatcher through it).
        assert wait_for(lambda: pg.client_connections(dbname, listeners=False) <= 1, timeout=10), (
            pg.client_connections(dbname)
        )
        assert pg.listeners(dbname) == 1
        second = httpx.post(server.url("/publish/idle/"), timeout=10).json()["ids"][0]
        assert read_until(sockets, f"id: {second}\n".encode()) == 50  # live, after the replay
    finally:
        close_all(sockets)
        server.stop()


def test_a_pool_of_4_connections_serves_100_streams(pg: Postgres) -> None:
    dbname = "pool_streams"
    migrate(pg, dbname)
    server = start("uvicorn", env=_startproject(pg, dbname, pool=True))
    headers = "Cookie: sessionid=x\r\nLast-Event-ID: 0\r\n"
    sockets = open_streams(server.port, "/private/pooled/", 100, headers=headers)
    try:
        assert wait_for(lambda: sse_stats(server.base_url)["subscribers"] == 100, timeout=60), server.log()
        assert pg.client_connections(dbname, listeners=False) <= 4
        assert pg.listeners(dbname) == 1
        marker = httpx.post(server.url("/publish/pooled/?n=1&size=7"), timeout=10).json()["ids"][0]
        assert read_until(sockets, f"id: {marker}\n".encode()) == 100, server.log()
    finally:
        close_all(sockets)
        server.stop()


def _read_ids(url: str, want: int, *, last_event_id: str | None = None, drop_every: int = 0) -> list[int]:
    """The ids of the data events a client gets on ``url``, until ``want`` have come (60 s at most).

    With ``drop_every``, the client drops the connection after that many events and resumes with
    ``Last-Event-ID``, as a browser does after a network blip.
    """
    received: list[int] = []
    deadline = time.monotonic() + 60
    while len(received) < want and time.monotonic() < deadline:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        with httpx.Client(timeout=15) as client, client.stream("GET", url, headers=headers) as response:
            current: str | None = None
            for line in response.iter_lines():
                if line.startswith("id: "):
                    current = line[4:]
                    last_event_id = current
                elif line.startswith("data: ") and current is not None:
                    received.append(int(current))
                    if len(received) >= want or (drop_every and len(received) % drop_every == 0):
                        break
    return received


def test_ids_commit_in_order_with_slow_transactions_even_after_a_flush(pg: Postgres) -> None:
    # 2 fast publishers and 2 whose transactions commit 50 ms after their id was given: without a
    # lock between them, a live client reads past an id that commits later, and never gets it.
    dbname = "ordering"
    migrate(pg, dbname)
    pg.query("DELETE FROM django_sse_publishlock", dbname)  # what `manage.py flush` does
    env = environment(pg, dbname)
    server = start("uvicorn", env=env)
    a, b = "ord-a", "ord-b"
    url = server.url(f"/channels/{a},{b}/")
    try:
        with httpx.Client(timeout=10) as client, client.stream("GET", url) as response:
            position = next(line[4:] for line in response.iter_lines() if line.startswith("id: "))
        total = 2 * 40 + 2 * 20
        with ThreadPoolExecutor(2) as pool:
            live = pool.submit(_read_ids, url, total, last_event_id=position)
            blinking = pool.submit(_read_ids, url, total, last_event_id=position, drop_every=7)
            assert wait_for(lambda: sse_stats(server.base_url)["subscribers"] >= 1, timeout=10)
            publishers = [start_publisher(f"{a},{b}", 40, 0.005, env=env) for _ in range(2)]
            publishers += [start_publisher(f"{a},{b}", 20, 0.0, hold=0.05, env=env) for _ in range(2)]
            published: list[int] = []
            for publisher in publishers:
                out, _ = publisher.communicate(timeout=60)
                assert publisher.returncode == 0
                published += [int(line.split()[0]) for line in out.splitlines()]
            expected = sorted(published)
            assert len(expected) == total
            assert live.result(timeout=90) == expected
            assert blinking.result(timeout=90) == expected
    finally:
        server.stop()
