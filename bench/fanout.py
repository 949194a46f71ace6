"""Fan-out cost of django-sse against a plain-Django baseline: server CPU per delivered event, memory
per open connection, and delivery, for many clients of one channel.

Run from the repository root: ``.venv/bin/python bench/fanout.py [--clients N] [--rate R] [--seconds S]``.
For each row the script starts a server (one process) on a free 127.0.0.1 port, opens the clients from
one separate client process, has a publisher thread inside the server publish R events per second for
S seconds, and reads the server's CPU time and RSS from /proc. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import httpx
from harness import (
    APP,
    APP_SSE,
    CLIENT_FLAG,
    POLL,
    ClientProcess,
    CountingStream,
    close_streams,
    counting_streams,
    cpu_seconds,
    delivery_result,
    emit,
    log_tail,
    migrate,
    open_streams,
    raise_nofile,
    rss_kib,
    run_client,
    serve,
    threads,
    wait_delivered,
    wait_until,
)

SETTINGS = "benchproject.settings_fanout"
#: (label, kind for the bench views, stream path)
ROWS = [
    ("django-sse", "sse", "/fanout/sse/", APP),
    ("sse + asgi", "sse", "/fanout/sse/", APP_SSE),  # the same, behind django_sse.asgi
    ("baseline", "plain", "/fanout/plain/", APP),
]


# ============================================================ client process


async def _client(cfg: dict[str, Any]) -> None:
    """Open the streams, report; on "go" count events until all are in or the deadline; report."""
    loop = asyncio.get_running_loop()
    expected = cfg["expected"]
    streams = counting_streams(CountingStream, cfg, cfg["path"])
    started = time.monotonic()
    live, errors = await open_streams(streams, cfg)
    emit("connected", ok=len(live), errors=errors, seconds=time.monotonic() - started)

    line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.strip() == "go":
        cpu, wall = time.process_time(), time.monotonic()
        counts = await wait_delivered(live, expected, cfg["seconds"] + cfg["grace"])
        emit("done", cpu=time.process_time() - cpu, wall=time.monotonic() - wall)
        emit("result", **delivery_result(live, counts, expected))
        await loop.run_in_executor(None, sys.stdin.readline)  # "exit", or EOF
    await close_streams(streams)


# ============================================================ orchestration


def warm_up(http: httpx.Client, url: str, kind: str) -> None:
    """One stream, read until it is subscribed, then closed: imports, threads and connections warm."""
    seen = b""
    with http.stream("GET", url) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            seen += chunk
            if b"\n\n" in seen and (kind != "sse" or b"id:" in seen):
                return


@dataclass
class Row:
    label: str
    connected: int
    expected: int  # events every client should get
    connect_seconds: float
    rss_before: int  # KiB
    rss_connected: int
    rss_after: int
    threads_before: int
    threads_connected: int
    idle_cpu: float  # server CPU seconds per second, clients connected, nothing published
    server_cpu: float  # server CPU seconds over the window
    window: float  # seconds from "go" until every event was in (or the deadline)
    client_cpu: float
    result: dict[str, Any]
    stats: dict[str, Any]
    leftover: tuple[int, int]  # subscribers and threads once the clients have gone

    @property
    def delivered(self) -> int:
        return int(self.result["delivered"])

    @property
    def delivery(self) -> float:
        return self.delivered / max(1, self.connected * self.expected)

    @property
    def us_per_event(self) -> float:
        return self.server_cpu / self.delivered * 1e6 if self.delivered else math.nan

    @property
    def kib_per_connection(self) -> float:
        return (self.rss_connected - self.rss_before) / max(1, self.connected)


def measure(args: argparse.Namespace, label: str, kind: str, path: str, app: str, db: str) -> Row:
    count = max(1, round(args.rate * args.seconds))
    server_args = ["--loop", args.loop] if args.server == "uvicorn" else []
    env = {"BENCH_FANOUT_DB": db, "BENCH_FANOUT_DJANGO_SSE": args.django_sse}
    with (
        serve(args.server, SETTINGS, args=server_args, env=env, app=app) as server,
        httpx.Client(trust_env=False, timeout=10.0) as http,
    ):
        pid, stats_url = server.pid, f"{server.base}/fanout/stats/?kind={kind}"

        def stats() -> dict[str, Any]:
            data: dict[str, Any] = http.get(stats_url).raise_for_status().json()
            return data

        print(f"[{label}] {args.server} pid {pid} on {server.base}", file=sys.stderr)
        warm_up(http, server.base + path, kind)
        wait_until(lambda: stats()["subscribers"] == 0, 10, "the warm-up stream to end")
        time.sleep(0.5)
        rss_before, threads_before = rss_kib(pid), threads(pid)

        host, port = server.base.removeprefix("http://").split(":")
        cfg = {
            "host": host,
            "port": int(port),
            "path": path,
            "clients": args.clients,
            "expected": count,
            "seconds": args.seconds,
            "grace": args.grace,
            "sample_every": args.sample_every,
            "connect_timeout": args.connect_timeout,
        }
        client = ClientProcess(__file__, cfg)
        try:
            connected = client.expect("connected", args.connect_timeout + 30)
            ok = connected["ok"]
            print(
                f"[{label}] {ok} of {args.clients} connected in {connected['seconds']:.1f} s", file=sys.stderr
            )
            if connected["errors"]:
                print(f"[{label}] connection errors: {connected['errors']}", file=sys.stderr)
            if not ok:
                raise RuntimeError(f"no client connected:\n{log_tail(server.log)}")
            wait_until(lambda: stats()["subscribers"] >= ok, 60, f"{ok} subscribers")
            time.sleep(1.0)  # let the per-request threads settle
            rss_connected, threads_connected = rss_kib(pid), threads(pid)

            idle_start = cpu_seconds(pid)
            time.sleep(args.idle)
            idle_cpu = (cpu_seconds(pid) - idle_start) / args.idle

            client.send("go")
            cpu_start, wall_start = cpu_seconds(pid), time.monotonic()
            params = {"kind": kind, "rate": args.rate, "count": count}
            http.post(f"{server.base}/fanout/start/", params=params).raise_for_status()
            done = client.expect("done", args.seconds + args.grace + 30)
            server_cpu, window = cpu_seconds(pid) - cpu_start, time.monotonic() - wall_start
            rss_after = rss_kib(pid)
            result = client.expect("result", 60)
            final = stats()
            print(f"[{label}] window {window:.1f} s, {result['delivered']} events in", file=sys.stderr)
        finally:
            client.close()
        # Every stream must end once its client has gone: no subscription, no thread left behind.
        left = time.monotonic() + 30
        while stats()["subscribers"] and time.monotonic() < left:
            time.sleep(POLL)
        time.sleep(1.0)
        leftover = stats()["subscribers"], threads(pid)
        return Row(
            label=label,
            connected=ok,
            expected=count,
            connect_seconds=connected["seconds"],
            rss_before=rss_before,
            rss_connected=rss_connected,
            rss_after=rss_after,
            threads_before=threads_before,
            threads_connected=threads_connected,
            idle_cpu=idle_cpu,
            server_cpu=server_cpu,
            window=window,
            client_cpu=done["cpu"],
            result=result,
            stats=final,
            leftover=leftover,
        )


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def report(args: argparse.Namespace, rows: list[Row]) -> None:
    line = "{:<12} {:>17} {:>7} {:>10} {:>9} {:>11} {:>9} {:>10} {:>8} {:>11} {:>8} {:>8}"
    header = (
        "row",
        "delivered",
        "ratio",
        "complete",
        "srv CPU s",
        "us CPU/evt",
        "idle CPU",
        "KiB/conn",
        "threads",
        "client CPU",
        "p50 ms",
        "p99 ms",
    )
    print(line.format(*header))
    for row in rows:
        r = row.result
        print(
            line.format(
                row.label,
                f"{row.delivered}/{row.connected * row.expected}",
                f"{row.delivery:.4f}",
                f"{r['complete']}/{row.connected}",
                f"{row.server_cpu:.2f}",
                f"{row.us_per_event:.1f}",
                f"{row.idle_cpu * 100:.1f}%",
                f"{row.kib_per_connection:.1f}",
                f"{row.threads_before}>{row.threads_connected}",
                f"{row.client_cpu:.2f} s",
                _ms(r["latency_p50"]),
                _ms(r["latency_p99"]),
            )
        )
    base = rows[-1]
    print()
    for sse in rows[:-1]:
        print(
            f"{sse.label} / baseline: CPU per delivered event {sse.us_per_event / base.us_per_event:.2f}x, "
            f"memory per connection {sse.kib_per_connection / base.kib_per_connection:.2f}x, "
            f"delivery {sse.delivery / base.delivery:.4f}x"
        )
    print()
    for row in rows:
        r, s = row.result, row.stats
        print(
            f"{row.label}: window {row.window:.1f} s, server {row.server_cpu / row.window * 100:.0f}% of a "
            f"core, client {row.client_cpu / row.window * 100:.0f}%; RSS {row.rss_before / 1024:.1f} MiB "
            f"-> {row.rss_connected / 1024:.1f} connected -> {row.rss_after / 1024:.1f} after; "
            f"connect {row.connect_seconds:.1f} s; published {s['published']} "
            f"({s['publish_seconds'] / max(1, s['published']) * 1000:.2f} ms wall each); "
            f"per-client events {r['min_count']}..{r['max_count']}, closed early {r['closed']}, "
            f"slow clients {s['slow_clients']}; sampled {r['sampled_in_order']}/{r['sampled']} streams "
            f"with every seq in order; max latency {_ms(r['latency_max'])} ms; after the clients left: "
            f"{row.leftover[0]} subscribers, {row.leftover[1]} threads"
            + (f"; publisher error {s['error']}" if s["error"] else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=1000, help="open streams (default 1000)")
    parser.add_argument("--rate", type=float, default=10.0, help="publishes per second (default 10)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of publishing (default 20)")
    parser.add_argument("--server", choices=["uvicorn", "daphne"], default="uvicorn")
    parser.add_argument(
        "--loop", choices=["asyncio", "uvloop", "auto"], default="asyncio", help="uvicorn's --loop"
    )
    parser.add_argument(
        "--django-sse",
        default="{}",
        metavar="JSON",
        help="the DJANGO_SSE setting of the server, e.g. '{\"HEARTBEAT\": null}' (default: {}, the defaults)",
    )
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle CPU measurement (default 3)")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds to wait for late events")
    parser.add_argument("--sample-every", type=int, default=50, help="parse every Nth stream (default 50)")
    parser.add_argument("--connect-timeout", type=float, default=120.0, help="seconds to connect all")
    args = parser.parse_args()
    if args.clients < 1 or args.rate <= 0 or args.seconds <= 0 or args.sample_every < 1:
        parser.error("--clients, --rate, --seconds and --sample-every must be positive")
    try:
        if not isinstance(json.loads(args.django_sse), dict):
            raise ValueError("not an object")
    except ValueError as exc:
        parser.error(f"--django-sse must be a JSON object: {exc}")
    raise_nofile(args.clients)

    packages = ", ".join(f"{p} {version(p)}" for p in ("django", "uvicorn", "daphne", "uvloop"))
    loop = f"--loop {args.loop}" if args.server == "uvicorn" else "Twisted asyncio reactor"
    count = max(1, round(args.rate * args.seconds))
    print(f"Python {platform.python_version()}, {packages}; {os.cpu_count()} CPUs")
    print(
        f"{args.server} ({loop}), 1 process; {args.clients} clients from 1 client process (uvloop); "
        f"{count} events ({args.rate:g}/s for {args.seconds:g} s) from a thread in the server process; "
        f"DJANGO_SSE={args.django_sse}\n"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        db = os.path.join(tmp, "db.sqlite3")
        migrate(SETTINGS, {"BENCH_FANOUT_DB": db})
        for label, kind, path, app in ROWS:
            rows.append(measure(args, label, kind, path, app, db))
    report(args, rows)


if __name__ == "__main__":
    if sys.argv[1:2] == [CLIENT_FLAG]:
        run_client(_client, sys.argv[2])
    else:
        main()
