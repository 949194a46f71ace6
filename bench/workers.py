"""Cross-process delivery: from ``publish()`` in another process to clients spread over worker processes.

Run from the repository root: ``.venv/bin/python bench/workers.py [--workers 4] [--events 200]
[--rounds 3]``. Rows, one after the other (``--rounds`` times, interleaved, with each round's median
printed to show the noise), each on a fresh database and a fresh ``uvicorn --workers N``
(``benchproject.settings_workers``):

- ``in-process``: one worker; the events are published by a view of that worker (``POST``), the
  reference every other row is compared with;
- ``embedded, SQLite``: the default backend, a SQLite file; the wake-up is a datagram per worker;
- ``embedded, PostgreSQL``: the default backend on PostgreSQL (a server of our own, as the tests
  start it); the wake-up is ``LISTEN``/``NOTIFY``;
- ``PostgreSQL backend``: ``PostgresBackend`` on the same server (``LISTEN``/``NOTIFY``, no poll);
- ``Redis backend``: ``ChannelLayerBackend`` on a redis-server of our own, SQLite history.

For every row but the first, the publisher is a process of its own (as a task queue worker or a
management command is), publishing ``--events`` events ``{"t": time.time()}`` 20-70 ms apart,
after one on another channel that is not measured (it connects to Redis, ~150 ms).
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


def setups(tmp: str, stack: contextlib.ExitStack, wanted: list[str], workers: int) -> list[tuple[str, Any]]:
    """(label, a function of the round that gives the row's environment and worker count; 0 workers:
    the in-process row, one worker that publishes itself)."""
    pg: Any = None

    def postgres_database(name: str) -> dict[str, str]:
        nonlocal pg
        if pg is None:
            pg = stack.enter_context(postgres())
        pg.create_database(name)
        return {"BENCH_WORKERS_DB": name, "BENCH_WORKERS_PG_PORT": str(pg.port)}

    redis: Any = None

    def redis_env(n: int) -> dict[str, str]:
        nonlocal redis
        if redis is None:
            redis = stack.enter_context(redis_server(tmp))
        return {"BENCH_WORKERS_DB": os.path.join(tmp, f"redis-{n}.sqlite3"), "BENCH_REDIS_URL": redis.url}

    known = {
        "in-process": ("in-process (1 worker)", lambda n: ({"BENCH_WORKERS_DB": f"{tmp}/in-{n}.sqlite3"}, 0)),
        "sqlite": ("embedded, SQLite", lambda n: ({"BENCH_WORKERS_DB": f"{tmp}/w-{n}.sqlite3"}, workers)),
        "postgresql": ("embedded, PostgreSQL", lambda n: (postgres_database(f"bench_embedded_{n}"), workers)),
        "postgresql-backend": (
            "PostgreSQL backend",
            lambda n: ({**postgres_database(f"bench_backend_{n}"), "BENCH_BACKEND": "postgres"}, workers),
        ),
        "redis": ("Redis backend", lambda n: (redis_env(n), workers)),
    }
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; choose from {', '.join(known)}")
    return [known[name] for name in wanted]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=40, help="streams opened (more if a worker has none)")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle streams, queries counted")
    parser.add_argument("--rows", default="in-process,sqlite,postgresql,postgresql-backend,redis")
    parser.add_argument("--rounds", type=int, default=1, help="run every row this many times, interleaved")
    args = parser.parse_args()
    load = loadavg()
    by_label: dict[str, list[Row]] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        rows = setups(tmp, stack, args.rows.split(","), args.workers)
        for n in range(args.rounds):  # interleaved, so that the machine's moods spread over every row
            for label, setup in rows:
                env, workers = setup(n)
                row = run_row(args, label, env, workers or 1, in_process=not workers)
                by_label.setdefault(label, []).append(row)
    load_after = loadavg()
    print(
        f"\n{args.events} events, 20-70 ms apart, from another process (in-process: from a view);"
        f" {args.workers} workers; {args.rounds} round(s), latencies pooled; in ms"
    )
    header = ["row", "delivered", "p50", "p90", "p99", "max", "idle queries/s"]
    print(f"{header[0]:24}" + "".join(f"{h:>16}" for h in header[1:]))
    pooled = {label: pool(runs) for label, runs in by_label.items()}
    for label, row in pooled.items():
        print(f"{label:24}" + "".join(f"{c:>16}" for c in row.cells()))
    reference = next(
        (r for label, r in pooled.items() if label.startswith("in-process") and r.latencies), None
    )
    for label, row in pooled.items():
        if reference is not None and row is not reference and row.latencies:
            ratio = percentile(row.latencies, 50) / percentile(reference.latencies, 50)
            print(f"{label}: p50 {ratio:.2f}x in-process")
    if args.rounds > 1:
        print("noise, p50 of each round (ms):")
        for label, runs in by_label.items():
            print(
                f"  {label:24}"
                + " / ".join(f"{percentile(r.latencies, 50) * 1000:.1f}" for r in runs if r.latencies)
            )
    print(f"machine load average (1, 5, 15 min): {' '.join(load)} before, {' '.join(load_after)} after")
    print("idle queries/s: the busiest worker's, with its streams open and nothing published")


def pool(runs: list[Row]) -> Row:
    """The rounds of one row as one."""
    return Row(
        runs[0].label,
        [x for r in runs for x in r.latencies],
        sum(r.expected for r in runs),
        [x for r in runs for x in r.idle_queries],
        runs[0].workers,
    )


def publisher_main(count: int) -> None:
    import django

    django.setup()
    from django_sse import publish

    # Not measured: a first publish that connects (to Redis, or PostgreSQL's first query), as a
    # long-lived publisher (a task queue worker) has done long before.
    publish("bench-warm-up", {"t": time.time()})
    for _ in range(count):
        publish("bench", {"t": time.time()})
        time.sleep(random.uniform(0.02, 0.07))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == PUBLISH_FLAG:
        publisher_main(int(sys.argv[2]))
    else:
        main()
