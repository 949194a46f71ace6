"""Fan-out capacity of one uvicorn worker against two, with the Redis backend (ChannelLayerBackend).

Run from the repository root: ``.venv/bin/python bench/scaling.py [--clients N] [--workers 1,2]``.
The script starts its own redis-server and, per worker count, a fresh SQLite database and
``uvicorn --workers N`` on free 127.0.0.1 ports; one client process holds the streams, one
publisher process publishes at increasing rates. For each rate it records delivery and latency;
a rate is *held* when every client got every event and p99 latency stayed under a second. It prints
a table per worker count and the ratio of the highest held rates. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
from harness import (
    CLIENT_FLAG,
    POLL,
    Child,
    ClientProcess,
    CountingStream,
    Redis,
    bench_env,
    close_streams,
    counting_streams,
    cpu_seconds,
    delivery_result,
    emit,
    log_tail,
    migrate,
    open_streams,
    raise_nofile,
    redis_server,
    run_client,
    serve,
    wait_delivered,
)

SETTINGS = "benchproject.settings_scaling"
FEED = "/scaling/feed/"
STATS = "/scaling/stats/"
CHANNEL = "bench"  # benchproject.scaling_views.CHANNEL
WORKER_HEADER = b"x-bench-worker"  # benchproject.scaling_views.WORKER_HEADER, lower-cased
PUBLISHER_FLAG = "--run-publisher-process"  # internal: this file is also the publisher process (and client)
DEFAULT_RATES = "2,5,10,15,20,30,40,50,60,80,100,120,150,200,250,300,400,500"
STATS_ATTEMPTS = 60  # fresh connections to /scaling/stats/ until every worker has answered
SHUTDOWN_TIMEOUT = 60.0  # seconds for uvicorn and its workers to exit after SIGTERM


# ============================================================ client process


class _Stream(CountingStream):
    """bench/fanout.py's counting stream, plus the serving worker's PID and "subscribed" (the id block)."""

    def __init__(self, request: bytes, sample: bool, ready: asyncio.Future[int]) -> None:
        super().__init__(request, sample, ready)
        self.worker = 0
        self.positioned = False  # the stream has sent its position (``id:``): it is subscribed
        self.preamble = b""

    def data_received(self, data: bytes) -> None:
        body = data
        if not self.status:
            head = self.head + data
            end = head.find(b"\r\n\r\n")
            body = head[end + 4 :] if end >= 0 else b""
            for line in head[: max(end, 0)].split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == WORKER_HEADER:
                    self.worker = int(value)
        super().data_received(data)
        if not self.positioned and body:
            # The body starts with "retry:" (sent before subscribing), then the "id:" block.
            self.preamble += body
            self.positioned = b"id: " in self.preamble
            if self.positioned:
                self.preamble = b""


async def _client(cfg: dict[str, Any]) -> None:
    """Open the streams; then, per step: "arm" (note counts), "wait N T" (until +N each, or T more s)."""
    loop = asyncio.get_running_loop()
    streams = counting_streams(_Stream, cfg, FEED)
    started = time.monotonic()
    live, errors = await open_streams(streams, cfg)
    deadline = started + cfg["connect_timeout"]
    while time.monotonic() < deadline:
        if all(s.positioned or s.closed for s in live):
            break
        await asyncio.sleep(POLL)
    emit(
        "connected",
        ok=len(live),
        positioned=sum(s.positioned for s in live),
        errors=errors,
        seconds=time.monotonic() - started,
        workers=dict(Counter(str(s.worker) for s in live)),
    )

    base: list[int] = []
    cpu = 0.0
    while True:
        command = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not command or command[0] == "exit":
            break
        if command[0] == "arm":
            base = [s.count for s in live]
            for stream in live:
                stream.seqs, stream.latencies = [], []
            cpu = time.process_time()
            emit("armed")
        elif command[0] == "wait":
            expected, timeout = int(command[1]), float(command[2])
            wall = time.monotonic()
            counts = await wait_delivered(live, expected, timeout, base)
            incomplete = Counter(str(s.worker) for s, c in zip(live, counts, strict=True) if c != expected)
            emit(
                "result",
                **delivery_result(live, counts, expected),
                incomplete_by_worker=dict(incomplete),
                wait=time.monotonic() - wall,
                cpu=time.process_time() - cpu,
            )
    await close_streams(streams)


# ============================================================ publisher process


def publisher_main() -> None:
    """A process of its own, as a task worker would be: "publish RATE COUNT" publishes on a schedule."""
    import django

    django.setup()
    from django.db import connections

    from django_sse import PublishError, publish

    publish("bench-warmup", {"warmup": True})  # starts the backend's listener, opens the database
    emit("ready")
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "exit":
            break
        rate, count = float(command[1]), int(command[2])
        stored_only, publish_seconds, slowest = 0, 0.0, 0.0
        start = time.monotonic()
        first = last = start
        for seq in range(1, count + 1):
            delay = start + (seq - 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            before = time.perf_counter()
            last = time.monotonic()
            if seq == 1:
                first = last
            try:
                publish(CHANNEL, {"seq": seq, "t": time.time()})
            except PublishError:
                stored_only += 1
            took = time.perf_counter() - before
            publish_seconds += took
            slowest = max(slowest, took)
        emit(
            "published",
            count=count,
            achieved=(count - 1) / (last - first) if count > 1 and last > first else rate,
            stored_only=stored_only,
            mean_ms=publish_seconds / count * 1000,
            max_ms=slowest * 1000,
        )
    connections.close_all()


# ============================================================ orchestration


def busy_cpus() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from the first line of /proc/stat."""
    with open("/proc/stat") as stat:
        values = [float(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def worker_stats(base: str, workers: set[int]) -> dict[int, dict[str, Any]]:
    """/scaling/stats/ of each worker: asked over fresh connections until every PID has answered."""
    found: dict[int, dict[str, Any]] = {}
    for _ in range(STATS_ATTEMPTS):
        with contextlib.suppress(httpx.HTTPError), httpx.Client(trust_env=False, timeout=10) as http:
            data = http.get(base + STATS, headers={"Connection": "close"}).raise_for_status().json()
            found[int(data["pid"])] = data
        if workers <= found.keys():
            break
        time.sleep(0.05)
    return found


@dataclass
class Step:
    rate: float
    expected: int  # events per client
    clients: int
    result: dict[str, Any]
    published: dict[str, Any]
    window: float
    cpu: dict[str, float]  # share of one core over the window, per process
    machine: float  # share of all CPUs over the window
    publishes: int  # PUBLISH commands Redis executed over the window
    p99_limit: float

    @property
    def failures(self) -> list[str]:
        """Why the rate was not held: "loss", "p99" (the server's); "pub", "err" (the publisher's)."""
        r, p = self.result, self.published
        failed = []
        if r["complete"] != self.clients or r["closed"] or r["sampled_in_order"] != r["sampled"]:
            failed.append("loss")
        if r["latency_p99"] is None or r["latency_p99"] >= self.p99_limit:
            failed.append("p99")
        if p["achieved"] < 0.95 * self.rate:
            failed.append("pub")  # the publisher could not keep the schedule
        if p["stored_only"]:
            failed.append("err")  # PublishError: the channel layer was unreachable
        return failed

    @property
    def held(self) -> bool:
        return not self.failures


@dataclass
class Run:
    workers: int
    clients: int
    connected: dict[str, Any]
    steps: list[Step] = field(default_factory=list)
    stats: dict[int, dict[str, Any]] = field(default_factory=dict)
    stop_seconds: float = 0.0  # from SIGTERM to the server until it and its workers had exited
    leftover: list[int] = field(default_factory=list)  # PIDs still running SHUTDOWN_TIMEOUT after SIGTERM

    @property
    def held_rate(self) -> float:
        held = [s.rate for s in self.steps if s.held]
        return max(held, default=0.0)

    @property
    def lower_bound(self) -> bool:
        """Whether the workers may hold more than ``held_rate``: the ladder ended without them failing."""
        return bool(self.steps) and set(self.steps[-1].failures) <= {"pub"}

    @property
    def held_text(self) -> str:
        return (">=" if self.lower_bound else "") + f"{self.held_rate:g}/s"


def run_ladder(args: argparse.Namespace, workers: int, redis: Redis, db: str) -> Run:
    env = {"BENCH_SCALING_DB": db, "BENCH_REDIS_URL": redis.url, "BENCH_SCALING_DJANGO_SSE": args.django_sse}
    server_args = ["--workers", str(workers), "--loop", args.loop]
    pids: set[int] = set()
    with serve("uvicorn", SETTINGS, args=server_args, env=env) as server:
        host, port = server.base.removeprefix("http://").split(":")
        cfg = {
            "host": host,
            "port": int(port),
            "clients": args.clients,
            "sample_every": args.sample_every,
            "connect_timeout": args.connect_timeout,
        }
        print(f"[{workers} worker(s)] uvicorn pid {server.pid} on {server.base}", file=sys.stderr)
        client = ClientProcess(__file__, cfg)
        publisher = Child("publisher", [sys.executable, __file__, PUBLISHER_FLAG], bench_env(SETTINGS, env))
        run = Run(workers, 0, {})
        try:
            connected = client.expect("connected", args.connect_timeout + 30)
            run.clients, run.connected = connected["ok"], connected
            pids = {int(pid) for pid in connected["workers"]}
            print(f"[{workers} worker(s)] connected: {connected}", file=sys.stderr)
            if not connected["ok"] or connected["positioned"] != connected["ok"]:
                raise RuntimeError(f"not every client is subscribed:\n{log_tail(server.log)}")
            publisher.expect("ready", 60)
            time.sleep(2.0)  # let the per-request threads settle
            processes = {f"w{pid}": pid for pid in sorted(pids)}
            processes.update(client=client.proc.pid, publisher=publisher.proc.pid, redis=redis.proc.pid)
            for rate in args.rates:
                count = max(2, round(rate * args.step_seconds))
                client.send("arm")
                client.expect("armed", 30)
                cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
                machine_before, publishes_before, wall = busy_cpus(), redis.publishes(), time.monotonic()
                publisher.send(f"publish {rate} {count}")
                published = publisher.expect("published", count / rate + args.grace + 120)
                # The client has been counting since "arm": now it waits up to --grace for the rest.
                client.send(f"wait {count} {args.grace}")
                result = client.expect("result", args.grace + 60)
                window = time.monotonic() - wall
                machine_after = busy_cpus()
                step = Step(
                    rate=rate,
                    expected=count,
                    clients=run.clients,
                    result=result,
                    published=published,
                    window=window,
                    cpu={n: (cpu_seconds(p) - cpu_before[n]) / window for n, p in processes.items()},
                    machine=(machine_after[0] - machine_before[0]) / (machine_after[1] - machine_before[1]),
                    publishes=redis.publishes() - publishes_before,
                    p99_limit=args.p99_limit,
                )
                run.steps.append(step)
                print(f"[{workers} worker(s)] {format_step(step)}", file=sys.stderr)
                if not step.held:
                    break
                time.sleep(args.pause)  # a quiet moment between steps
            run.stats = worker_stats(server.base, pids)
        finally:
            client.close()
            publisher.close()
            run.stop_seconds, run.leftover = shut_down(server.pid, pids)
    return run


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _children(pid: int) -> set[int]:
    """The child processes of ``pid`` (from /proc/<pid>/task/*/children; empty if unavailable)."""
    found: set[int] = set()
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found.update(int(child) for child in children.read_text().split())
    return found


def shut_down(server: int, workers: set[int]) -> tuple[float, list[int]]:
    """SIGTERM uvicorn (by its PID) and wait for it and its workers; SIGKILL, by PID, what is left.

    Returns the seconds it took and the PIDs that had to be killed. serve() then reaps the server.
    """
    started = time.monotonic()
    workers = workers | _children(server)  # the workers even if no client reached them
    with contextlib.suppress(ProcessLookupError):
        os.kill(server, signal.SIGTERM)
    deadline = started + SHUTDOWN_TIMEOUT
    while time.monotonic() < deadline:
        if not any(_running(pid) for pid in {server, *workers}):
            break
        time.sleep(POLL)
    left = [pid for pid in sorted({*workers, server}) if _running(pid)]
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return time.monotonic() - started, left


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


LINE = "{:>6} {:>8} {:>17} {:>11} {:>7} {:>7} {:>7} {:>11} {:>8} {:>6} {:>7} {:>5} {:>7} {:>9}  {}"
HEADER = (
    "rate/s",
    "achieved",
    "delivered",
    "complete",
    "p50 ms",
    "p99 ms",
    "max ms",
    "workers CPU",
    "us/deliv",
    "client",
    "publish",
    "redis",
    "machine",
    "PUBLISH/e",
    "held",
)


def format_step(step: Step) -> str:
    r, p = step.result, step.published
    shares = [share for name, share in step.cpu.items() if name.startswith("w")]
    per_delivery = sum(shares) * step.window / max(1, r["delivered"]) * 1e6
    return LINE.format(
        f"{step.rate:g}",
        f"{p['achieved']:.1f}",
        f"{r['delivered']}/{step.clients * step.expected}",
        f"{r['complete']}/{step.clients}",
        _ms(r["latency_p50"]),
        _ms(r["latency_p99"]),
        _ms(r["latency_max"]),
        "+".join(f"{share * 100:.0f}" for share in shares) + "%",
        f"{per_delivery:.1f}",
        f"{step.cpu['client'] * 100:.0f}%",
        f"{step.cpu['publisher'] * 100:.0f}%",
        f"{step.cpu['redis'] * 100:.0f}%",
        f"{step.machine * 100:.0f}%",
        f"{step.publishes / step.expected:.2f}",
        "yes" if step.held else "NO:" + "+".join(step.failures),
    )


def report(args: argparse.Namespace, runs: list[Run]) -> None:
    for run in runs:
        spread = ", ".join(f"pid {pid}: {n}" for pid, n in sorted(run.connected["workers"].items()))
        print(f"uvicorn --workers {run.workers}: {run.clients} clients ({spread})")
        print(LINE.format(*HEADER))
        for step in run.steps:
            print(format_step(step))
        last = run.steps[-1] if run.steps else None
        if last is not None and not last.held:
            r, p = last.result, last.published
            print(
                f"  first rate not held, {last.rate:g}/s: closed early {r['closed']}, per-client events "
                f"{r['min_count']}..{r['max_count']} of {last.expected}, incomplete by worker "
                f"{r['incomplete_by_worker'] or '{}'}, sampled in order {r['sampled_in_order']}/"
                f"{r['sampled']}, stored-only publishes {p['stored_only']}, publish wall "
                f"{p['mean_ms']:.1f} ms mean / {p['max_ms']:.0f} ms max"
            )
        stats = "; ".join(
            f"pid {pid}: {s['subscribers']} subscribers, {s['slow_clients']} slow clients, "
            f"{s['outages']} outages"
            for pid, s in sorted(run.stats.items())
        )
        missing = {int(p) for p in run.connected["workers"]} - run.stats.keys()
        print(
            f"  highest rate held: {run.held_text}"
            + (
                " (the publisher, not the workers, could not go faster)"
                if run.lower_bound and run.steps and not run.steps[-1].held
                else " (the top of the ladder)"
                if run.lower_bound
                else ""
            )
            + f"; after the ladder: {stats or '-'}"
            + (f" (no answer from pid {sorted(missing)})" if missing else "")
            + f"; stopped in {run.stop_seconds:.1f} s after SIGTERM"
            + (f", killed after {SHUTDOWN_TIMEOUT:g} s: {run.leftover}" if run.leftover else "")
        )
        print()
    if len(runs) == 2 and runs[0].held_rate:
        one, two = runs
        print(
            f"highest broadcast rate held with zero loss and p99 < {args.p99_limit:g} s, "
            f"{one.clients} clients: {one.workers} worker(s) {one.held_text}, "
            f"{two.workers} worker(s) {two.held_text}, ratio "
            + {(False, True): ">=", (True, False): "<=", (True, True): "~?"}.get(
                (one.lower_bound, two.lower_bound), ""
            )
            + f"{two.held_rate / one.held_rate:.2f}"
        )
    if len(runs) == 2:
        one, two = runs
        p99 = {s.rate: s.result["latency_p99"] for s in two.steps}
        both = [(s.rate, s.result["latency_p99"], p99[s.rate]) for s in one.steps if p99.get(s.rate)]
        print(
            f"p99 latency ms at the rates both ran, {one.workers} -> {two.workers} worker(s): "
            + ", ".join(f"{rate:g}/s {_ms(a)} -> {_ms(b)}" for rate, a, b in both)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=2000, help="open streams (default 2000)")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (default 1,2)")
    parser.add_argument("--rates", default=DEFAULT_RATES, help=f"publishes/s to try ({DEFAULT_RATES})")
    parser.add_argument("--step-seconds", type=float, default=10.0, help="seconds of publishing per rate")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds to wait for late events per rate")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds of quiet between rates")
    parser.add_argument("--p99-limit", type=float, default=1.0, help="p99 latency for a held rate (s)")
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "auto"], default="asyncio")
    parser.add_argument("--sample-every", type=int, default=20, help="parse every Nth stream (default 20)")
    parser.add_argument("--connect-timeout", type=float, default=180.0, help="seconds to connect all")
    parser.add_argument("--django-sse", default="{}", metavar="JSON", help="added to the DJANGO_SSE setting")
    args = parser.parse_args()
    try:
        args.workers = [int(w) for w in args.workers.split(",")]
        args.rates = sorted(float(r) for r in args.rates.split(","))
        if not isinstance(json.loads(args.django_sse), dict):
            raise ValueError("--django-sse is not a JSON object")
    except ValueError as exc:
        parser.error(str(exc))
    if args.clients < 1 or min(args.workers) < 1 or min(args.rates) <= 0 or args.sample_every < 1:
        parser.error("--clients, --workers, --rates and --sample-every must be positive")
    raise_nofile(args.clients)

    packages = ", ".join(f"{p} {version(p)}" for p in ("django", "uvicorn", "channels_redis", "redis"))
    redis_binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    about_redis = subprocess.run([redis_binary, "--version"], capture_output=True, text=True, check=False)
    redis_version = about_redis.stdout.split(" v=")[-1].split()[0]
    python = platform.python_version()
    print(f"Python {python}, {packages}, redis-server {redis_version}; {os.cpu_count()} CPUs")
    print(
        f"uvicorn --loop {args.loop}, ChannelLayerBackend over RedisPubSubChannelLayer, SQLite history "
        f"(WAL); {args.clients} clients from 1 client process (uvloop); publisher: 1 process; "
        f"{args.step_seconds:g} s per rate; DJANGO_SSE extra={args.django_sse}\n"
    )
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp, redis_server(tmp) as redis:
        for workers in args.workers:
            db = os.path.join(tmp, f"db-{workers}.sqlite3")
            migrate(SETTINGS, {"BENCH_SCALING_DB": db})
            runs.append(run_ladder(args, workers, redis, db))
    report(args, runs)


if __name__ == "__main__":
    if sys.argv[1:2] == [CLIENT_FLAG]:
        run_client(_client, sys.argv[2])
    elif sys.argv[1:2] == [PUBLISHER_FLAG]:
        publisher_main()
    else:
        main()
