"""Cross-process delivery: from ``publish()`` in another process to clients spread over worker processes.

Run from the repository root: ``.venv/bin/python bench/workers.py [--workers 4] [--events 200]``.
Rows, one after the other, each on a fresh database and a fresh ``uvicorn --workers N``
(``benchproject.settings_workers``):

- ``in-process``: one worker; the events are published by a view of that worker (``POST``), the
  reference every other row is compared with;
- ``embedded, SQLite``: the default backend, a SQLite file; the wake-up is a datagram per worker;
- ``embedded, PostgreSQL``: the default backend on PostgreSQL (a server of our own, as the tests
  start it); the wake-up is ``LISTEN``/``NOTIFY``;
- ``PostgreSQL backend``: ``PostgresBackend`` on the same server (``LISTEN``/``NOTIFY``, no poll);
- ``Redis backend``: ``ChannelLayerBackend`` on a redis-server of our own, SQLite history.

For every row but the first, the publisher is a process of its own (as a task queue worker or a
management command is), publishing ``--events`` events ``{"t": time.time()}`` 20-70 ms apart.
Latency = arrival at the client (threads of this process, httpx + httpx-sse) - ``t``. Before
publishing, the streams stay idle for ``--idle`` seconds and each worker's database queries are
counted (by a wrapper on every connection of the server). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from harness import REPO_ROOT, bench_env, percentile, redis_server, serve
from httpx_sse import EventSource

SETTINGS = "benchproject.settings_workers"
FEED = "/workers/feed/"
PUBLISH_FLAG = "--run-publisher"  # internal: this script is also the publisher process
CONNECT_ROUNDS = 20  # more connections until every worker serves some, at most this many times
CATCH_UP = 30.0  # seconds the clients have, after the last publish, to receive every event


@dataclass
class Client:
    """One stream read on a thread: its worker's pid, then (arrival, publish time) per event."""

    url: str
    pid: int | None = None
    arrivals: list[tuple[float, float]] = field(default_factory=list)
    error: str = ""
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10, read=None), trust_env=False) as client,
                client.stream("GET", self.url) as response,
            ):
                for sse in EventSource(response).iter_sse():
                    if sse.event == "pid":
                        self.pid = int(sse.data)
                    elif sse.data:
                        self.arrivals.append((time.time(), json.loads(sse.data)["t"]))
                    if self.stop.is_set():
                        return
        except Exception as error:  # reported by the row
            self.error = repr(error)


def wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def connect(base: str, count: int) -> list[Client]:
    clients = [Client(base + FEED) for _ in range(count)]
    for client in clients:
        threading.Thread(target=client.run, daemon=True).start()
    wait(lambda: all(c.pid is not None or c.error for c in clients), 60, "the streams to open")
    errors = [c.error for c in clients if c.error]
    if errors:
        raise RuntimeError(f"streams failed: {errors[:3]}")
    return clients


def worker_stats(base: str, workers: int) -> dict[int, dict[str, int]]:
    """Each worker's stats (the kernel picks the worker per connection: ask until all answered)."""
    seen: dict[int, dict[str, int]] = {}
    with httpx.Client(trust_env=False, timeout=10) as http:
        for _ in range(workers * 50):
            answer = http.get(base + "/workers/stats/", headers={"Connection": "close"}).json()
            seen[answer["pid"]] = answer
            if len(seen) == workers:
                break
    return seen


@dataclass
class Row:
    label: str
    latencies: list[float]
    expected: int
    idle_queries: list[float]  # per worker, per second
    workers: int

    def cells(self) -> list[str]:
        ms = [x * 1000 for x in self.latencies]
        got = f"{len(self.latencies)}/{self.expected}"
        if not ms:
            return [got, "-", "-", "-", "-", "-"]
        idle = f"{max(self.idle_queries):.2f}" if self.idle_queries else "-"
        stats = (percentile(ms, p) for p in (50, 90, 99))
        return [got, *(f"{v:.1f}" for v in stats), f"{max(ms):.1f}", idle]


def run_row(args: argparse.Namespace, label: str, env: dict[str, str], workers: int, in_process: bool) -> Row:
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v", "0"],
        cwd=REPO_ROOT,
        env=bench_env(SETTINGS, env),
        check=True,
    )
    with serve("uvicorn", SETTINGS, args=["--workers", str(workers)], env=env) as server:
        clients = connect(server.base, args.clients)
        for _ in range(CONNECT_ROUNDS):
            if len({c.pid for c in clients}) >= workers:
                break
            clients += connect(server.base, workers)
        pids = {c.pid for c in clients}
        try:
            before, started = worker_stats(server.base, workers), time.monotonic()
            time.sleep(args.idle)  # the idle window being measured
            after, seconds = worker_stats(server.base, workers), time.monotonic() - started
            idle = [(after[p]["queries"] - before[p]["queries"]) / seconds for p in before if p in after]
            if in_process:
                with httpx.Client(trust_env=False, timeout=30) as http:
                    for _ in range(args.events):
                        http.post(server.base + "/workers/publish/").raise_for_status()
                        time.sleep(random.uniform(0.02, 0.07))
            else:
                command = [sys.executable, __file__, PUBLISH_FLAG, str(args.events)]
                subprocess.run(command, cwd=REPO_ROOT, env=bench_env(SETTINGS, env), check=True, timeout=600)
            with contextlib.suppress(RuntimeError):
                wait(lambda: all(len(c.arrivals) >= args.events for c in clients), CATCH_UP, "every event")
        finally:
            for client in clients:
                client.stop.set()
    latencies = [arrival - sent for c in clients for arrival, sent in c.arrivals]
    print(f"  {label}: {len(clients)} streams on {len(pids)} workers", flush=True)
    return Row(label, latencies, args.events * len(clients), idle, workers)


def loadavg() -> list[str]:
    with open("/proc/loadavg") as file:
        return file.read().split()[:3]


@contextlib.contextmanager
def postgres() -> Iterator[Any]:
    sys.path.insert(0, str(REPO_ROOT))
    from tests.postgres_server import start_postgres

    pg = start_postgres()
    try:
        yield pg
    finally:
        pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=40, help="streams opened (more if a worker has none)")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle streams, queries counted")
    parser.add_argument("--rows", default="in-process,sqlite,postgresql,postgresql-backend,redis")
    args = parser.parse_args()
    rows: list[Row] = []
    wanted = args.rows.split(",")
    load = loadavg()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        sqlite = {"BENCH_WORKERS_DB": os.path.join(tmp, "in-process.sqlite3")}
        if "in-process" in wanted:
            rows.append(run_row(args, "in-process (1 worker)", sqlite, 1, True))
        if "sqlite" in wanted:
            env = {"BENCH_WORKERS_DB": os.path.join(tmp, "workers.sqlite3")}
            rows.append(run_row(args, "embedded, SQLite", env, args.workers, False))
        pg = None
        if "postgresql" in wanted:
            pg = stack.enter_context(postgres())
            pg.create_database("bench_workers")
            env = {"BENCH_WORKERS_DB": "bench_workers", "BENCH_WORKERS_PG_PORT": str(pg.port)}
            rows.append(run_row(args, "embedded, PostgreSQL", env, args.workers, False))
        if "postgresql-backend" in wanted:
            if pg is None:
                pg = stack.enter_context(postgres())
            pg.create_database("bench_workers_backend")
            env = {
                "BENCH_WORKERS_DB": "bench_workers_backend",
                "BENCH_WORKERS_PG_PORT": str(pg.port),
                "BENCH_BACKEND": "postgres",
            }
            rows.append(run_row(args, "PostgreSQL backend", env, args.workers, False))
        if "redis" in wanted:
            redis = stack.enter_context(redis_server(tmp))
            env = {"BENCH_WORKERS_DB": os.path.join(tmp, "redis.sqlite3"), "BENCH_REDIS_URL": redis.url}
            rows.append(run_row(args, "Redis backend", env, args.workers, False))
    load_after = loadavg()
    print(
        f"\n{args.events} events, 20-70 ms apart, from another process (in-process: from a view);"
        f" {args.workers} workers; latency in ms"
    )
    header = ["row", "delivered", "p50", "p90", "p99", "max", "idle queries/s"]
    print(f"{header[0]:24}" + "".join(f"{h:>16}" for h in header[1:]))
    for row in rows:
        print(f"{row.label:24}" + "".join(f"{c:>16}" for c in row.cells()))
    reference = next((r for r in rows if r.label.startswith("in-process") and r.latencies), None)
    for row in rows:
        if reference is not None and row is not reference and row.latencies:
            ratio = percentile(row.latencies, 50) / percentile(reference.latencies, 50)
            print(f"{row.label}: p50 {ratio:.2f}x in-process")
    print(f"machine load average (1, 5, 15 min): {' '.join(load)} before, {' '.join(load_after)} after")
    print("idle queries/s: the busiest worker's, with its streams open and nothing published")


def publisher_main(count: int) -> None:
    import django

    django.setup()
    from django_sse import publish

    for _ in range(count):
        publish("bench", {"t": time.time()})
        time.sleep(random.uniform(0.02, 0.07))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == PUBLISH_FLAG:
        publisher_main(int(sys.argv[2]))
    else:
        main()
