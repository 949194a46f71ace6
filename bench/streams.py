"""What an open stream costs and how fast one stream goes: django-sse against plain Django, side by side
on the same servers, in one run.

Run from the repository root: ``.venv/bin/python bench/streams.py [--streams N] [--servers uvicorn,daphne]``.
Part 1 holds N idle streams per row (a fresh server process each) from one client process, reads the
server's threads, RSS and file descriptors from /proc, and publishes one event to all of them. Part 2
reads one stream as fast as the server sends it, and times the first event of fresh connections.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import httpx
from harness import (
    CLIENT_FLAG,
    CLOCK_TICKS,
    POLL,
    REPO_ROOT,
    ClientProcess,
    ResponseReader,
    Server,
    bench_env,
    cpu_seconds,
    emit,
    log_tail,
    open_fds,
    percentile,
    raise_nofile,
    rss_kib,
    run_client,
    serve,
    threads,
)

SSE = "benchproject.settings_streams"  # startproject's stack + GZip first + EventStreamMiddleware last
PLAIN = "benchproject.settings_streams_plain"  # the same stack, no django-sse
BARE = "benchproject.settings_streams_bare"  # no middleware at all
ROOM = "/streams/room/bench/"
FAST = "/streams/fast/"
FAST_SLEEP = "/streams/fast-sleep0/"  # plain only: `await asyncio.sleep(0)` after every yield
FIRST = "/streams/first/"  # one event at once, then nothing: the time to the first event
#: Part 1 rows: (label, settings module).
IDLE_ROWS = [("django-sse", SSE), ("plain + stack", PLAIN), ("plain bare", BARE)]
#: Part 2 rows: (label, settings module, path).
FAST_ROWS = [
    ("django-sse", SSE, FAST),
    ("plain + stack", PLAIN, FAST),
    ("plain + stack, sleep(0)", PLAIN, FAST_SLEEP),
    ("plain bare", BARE, FAST),
    ("plain bare, sleep(0)", BARE, FAST_SLEEP),
]
CONNECT_CONCURRENCY = 200  # connections being opened at once by the client process


# ============================================================ client side


class _Reader(ResponseReader):
    """One stream over a raw socket, read as a browser would: counts the blocks (events, each ending in
    a blank line) of the decoded body and notes when the first body bytes and the first complete event
    with data arrived."""

    def __init__(self, request: bytes) -> None:
        super().__init__(request)
        self.body_at: float | None = None  # monotonic time of the first decoded body bytes
        self.data_at: float | None = None  # ... and of the end of the first event with a data line
        self.data_wall = 0.0  # time.time() of the same
        self.body = asyncio.Event()  # set at the first body bytes, or when the connection is lost
        self.data = asyncio.Event()  # set at the first data event, or when the connection is lost
        self.blocks = 0  # b"\n\n" in the decoded body
        self.wire = 0  # body bytes on the wire
        self.last = b""
        self.scan = b""  # decoded body not yet searched for a data event
        self.closed = False
        self.error = ""

    def started(self, status: int, headers: dict[str, str]) -> bool:
        if status == 200:
            return True
        self.error = f"HTTP {status}"
        assert self.transport is not None
        self.transport.close()
        return False

    def body_received(self, body: bytes, wire: int) -> None:
        self.wire += wire
        if not body:
            return
        if self.body_at is None:
            self.body_at = time.monotonic()
            self.body.set()
        # An event ends with exactly one blank line, so b"\n\n" never overlaps another.
        self.blocks += body.count(b"\n\n") + (self.last == b"\n" and body[:1] == b"\n")
        self.last = body[-1:]
        if self.data_at is None:
            self._find_data_event(body)

    def _find_data_event(self, body: bytes) -> None:
        self.scan += body
        end = self.scan.rfind(b"\n\n")
        if end < 0:
            return
        for block in self.scan[:end].split(b"\n\n"):
            if block.startswith(b"data:") or b"\ndata:" in block:
                self.data_at, self.data_wall = time.monotonic(), time.time()
                self.data.set()
                self.scan = b""
                return
        self.scan = self.scan[end + 2 :]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = self.error or f"closed: {exc!r}"
        self.body.set()
        self.data.set()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _request(cfg: dict[str, Any], path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {cfg['host']}:{cfg['port']}\r\nAccept: text/event-stream\r\n"
        "Accept-Encoding: gzip, deflate, br\r\nCache-Control: no-cache\r\n\r\n"
    ).encode()


async def _connect(cfg: dict[str, Any], reader: _Reader) -> None:
    await asyncio.get_running_loop().create_connection(lambda: reader, cfg["host"], cfg["port"])


async def _stdin_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def _idle_client(cfg: dict[str, Any]) -> None:
    """Open the streams; on "go" wait until each has an event with data (or the deadline); on "exit" close."""
    readers = [_Reader(_request(cfg, cfg["path"])) for _ in range(cfg["streams"])]
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_stream(reader: _Reader) -> float:
        async with gate:
            await _connect(cfg, reader)
            await asyncio.wait_for(reader.body.wait(), cfg["stream_timeout"])
            if reader.body_at is None:
                raise ConnectionError(reader.error)
            return reader.body_at

    started = time.monotonic()
    outcomes = await asyncio.gather(*(open_stream(r) for r in readers), return_exceptions=True)
    live = [r for r, o in zip(readers, outcomes, strict=True) if isinstance(o, float)]
    errors = Counter(
        (r.error if r.error.startswith("HTTP") else type(o).__name__)
        for r, o in zip(readers, outcomes, strict=True)
        if not isinstance(o, float)
    )
    emit(
        "connected",
        ok=len(live),
        errors=dict(errors),
        seconds=max((r.body_at or started for r in live), default=started) - started,
        gzip=sum(r.gzip for r in live),
    )
    if (await _stdin_line()).strip() == "go":
        waits = [asyncio.ensure_future(r.data.wait()) for r in live]  # set by the event, or by a close
        if waits:
            _, pending = await asyncio.wait(waits, timeout=cfg["deadline"])
            for wait in pending:
                wait.cancel()
        arrivals = [r.data_wall for r in live if r.data_at is not None]
        emit(
            "received",
            received=len(arrivals),
            closed=sum(r.closed for r in live),
            first=min(arrivals, default=None),
            last=max(arrivals, default=None),
        )
        await _stdin_line()  # "exit", or EOF
    for reader in readers:
        reader.close()
    await asyncio.sleep(0.5)  # let the closes go out before the loop ends


async def _rate_client(cfg: dict[str, Any]) -> None:
    """One stream: skip ``warmup`` seconds from its first body bytes, then count events for ``seconds``."""
    reader = _Reader(_request(cfg, cfg["path"]))
    await _connect(cfg, reader)
    emit("connected")
    start = time.monotonic()
    try:
        await asyncio.wait_for(reader.body.wait(), cfg["stream_timeout"])
    except TimeoutError:
        reader.error = f"no response within {cfg['stream_timeout']:g} s"
    if reader.body_at is None:  # the window is the wait for a response
        seconds = time.monotonic() - start
        emit("result", events=0, seconds=seconds, wire=0, cpu=0.0, gzip=None, error=reader.error)
        reader.close()
        return
    await asyncio.sleep(cfg["warmup"])
    blocks, wire, cpu, start = reader.blocks, reader.wire, time.process_time(), time.monotonic()
    emit("counting")
    await asyncio.sleep(cfg["seconds"])
    emit(
        "result",
        events=reader.blocks - blocks,
        seconds=time.monotonic() - start,
        wire=reader.wire - wire,
        cpu=time.process_time() - cpu,
        gzip=reader.gzip,
        error=reader.error if reader.closed else "",
    )
    reader.close()
    await asyncio.sleep(0.2)


async def _first_client(cfg: dict[str, Any]) -> None:
    """Fresh connections one after another: seconds from connect() to the first complete data event.

    Stops at the first connection without one within ``stream_timeout``: the server has stopped answering.
    """
    times: list[float] = []
    error = ""
    for _ in range(cfg["connections"]):
        reader = _Reader(_request(cfg, cfg["path"]))
        start = time.monotonic()
        try:
            await _connect(cfg, reader)
            await asyncio.wait_for(reader.data.wait(), cfg["stream_timeout"])
        except (OSError, TimeoutError) as exc:
            reader.error = reader.error or f"{type(exc).__name__} after {time.monotonic() - start:.1f} s"
        reader.close()
        if reader.data_at is None:
            error = reader.error
            break
        times.append(reader.data_at - start)
    emit("result", times=times, error=error)
    await asyncio.sleep(0.2)


CLIENT_MODES: dict[str, Callable[[dict[str, Any]], Coroutine[Any, Any, None]]] = {
    "idle": _idle_client,
    "rate": _rate_client,
    "first": _first_client,
}


async def _client(cfg: dict[str, Any]) -> None:
    """The client process: the mode ``cfg["mode"]`` says (its RLIMIT_NOFILE inherited from main())."""
    await CLIENT_MODES[cfg["mode"]](cfg)


# ============================================================ orchestration


class Machine:
    """The CPU that other processes used over a window: the busy jiffies of /proc/stat minus the CPU of
    this process and of its children that have exited meanwhile (servers, client processes, migrate:
    the kernel adds the utime + stime of a child to its parent's when it is waited for)."""

    def __init__(self) -> None:
        self.busy, self.ours, self.wall = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float]:
        with open("/proc/stat") as stat:
            user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in stat.readline().split()[1:8])
        own = os.times()
        ours = own.user + own.system + own.children_user + own.children_system
        return (user + nice + system + irq + softirq) / CLOCK_TICKS, ours, time.monotonic()

    def other(self) -> tuple[float, float]:
        """CPU seconds used by other processes since the start, and the wall seconds since then."""
        busy, ours, wall = self._read()
        return max(0.0, (busy - self.busy) - (ours - self.ours)), wall - self.wall


@dataclass
class Snapshot:
    threads: int
    rss: int  # KiB
    fds: int
    db_fds: int  # descriptors of the SQLite database file, its -wal and its -shm


def snapshot(pid: int, db: str) -> Snapshot:
    targets = open_fds(pid)
    db_files = {db, f"{db}-wal", f"{db}-shm", f"{db}-journal"}
    return Snapshot(threads(pid), rss_kib(pid), len(targets), sum(t in db_files for t in targets))


@dataclass
class IdleRow:
    label: str
    server: str
    streams: int
    error: str = ""
    connected: int = 0
    connect_errors: dict[str, int] = field(default_factory=dict)
    connect_seconds: float = 0.0
    gzip: int = 0  # streams whose response was gzip'd
    subscribed: int = 0  # the server's count of open streams once connected
    before: Snapshot | None = None
    open: Snapshot | None = None
    after: Snapshot | None = None
    received: int = 0
    closed: int = 0
    delivery: tuple[float, float] | None = None  # seconds from the publish to the first, to the last arrival
    leftover: int = 0  # open streams the server still counts after the clients have gone
    other_cpu: float = 0.0
    wall: float = 0.0

    @property
    def kib_per_stream(self) -> float:
        if self.before is None or self.open is None or not self.connected:
            return float("nan")
        return (self.open.rss - self.before.rss) / self.connected


@dataclass
class FastRow:
    label: str
    server: str
    error: str = ""
    events: int = 0
    seconds: float = 0.0
    wire: int = 0  # body bytes on the wire over the window
    gzip: bool | None = None  # None: no response headers
    server_cpu: float = 0.0  # share of one core over the window
    client_cpu: float = 0.0
    rate_error: str = ""
    alive: bool | None = None  # the server answered /ping/ after the stream had closed
    times: list[float] = field(default_factory=list)  # seconds from connect() to the first data event
    first_error: str = ""
    other_cpu: float = 0.0
    wall: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def first(self, p: float) -> float | None:
        return percentile(self.times, p) if self.times else None


def _server_args(args: argparse.Namespace, server: str) -> list[str]:
    return ["--loop", args.loop] if server == "uvicorn" else []


def _address(server: Server) -> dict[str, Any]:
    host, port = server.base.removeprefix("http://").split(":")
    return {"host": host, "port": int(port)}


def _poll(read: Callable[[], int], done: Callable[[int], bool], timeout: float) -> int:
    """``read()`` every POLL seconds until ``done`` says so or ``timeout``; the last value."""
    deadline = time.monotonic() + timeout
    while not done(value := read()) and time.monotonic() < deadline:
        time.sleep(POLL)
    return value


def migrate(db: str) -> None:
    command = [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"]
    env = bench_env(SSE, {"BENCH_STREAMS_DB": db})
    subprocess.run(command, cwd=REPO_ROOT, env=env, check=True, timeout=120)


def idle_round(
    args: argparse.Namespace,
    server: Server,
    http: httpx.Client,
    streams: int,
    seq: int,
    row: IdleRow | None = None,
    db: str = "",
) -> None:
    """Open ``streams`` streams from a client process, publish event ``seq``, count who got it, close.

    With a ``row``, fills it in, with a snapshot of the server taken while every stream is open.
    """

    def subscribers() -> int:
        count: int = http.get(f"{server.base}/streams/stats/").raise_for_status().json()["subscribers"]
        return count

    cfg = {
        "mode": "idle",
        **_address(server),
        "path": ROOM,
        "streams": streams,
        "stream_timeout": args.stream_timeout,
        "deadline": args.deadline,
    }
    client = ClientProcess(__file__, cfg)
    try:
        connected = client.expect("connected", args.connect_timeout)
        ok = connected["ok"]
        if not ok:
            raise RuntimeError(f"no stream connected: {connected['errors']}\n{log_tail(server.log)}")
        subscribed = _poll(subscribers, lambda n: n >= ok, 120)
        if row is not None:
            time.sleep(1.0)  # let the per-request threads settle
            row.connected, row.connect_errors = ok, connected["errors"]
            row.connect_seconds, row.gzip, row.subscribed = (
                connected["seconds"],
                connected["gzip"],
                subscribed,
            )
            row.open = snapshot(server.pid, db)
        client.send("go")
        published = time.time()
        http.post(f"{server.base}/streams/publish/", params={"seq": seq}).raise_for_status()
        received = client.expect("received", args.deadline + 60)
    finally:
        client.close()
    leftover = _poll(subscribers, lambda n: n == 0, 60)
    if row is not None:
        row.received, row.closed, row.leftover = received["received"], received["closed"], leftover
        if received["received"]:
            row.delivery = received["first"] - published, received["last"] - published
    elif received["received"] != ok:
        raise RuntimeError(f"warm-up: {received['received']} of {ok} streams got the event")


def idle_row(args: argparse.Namespace, server_name: str, label: str, settings: str, tmp: str) -> IdleRow:
    row = IdleRow(label, server_name, args.streams)
    machine = Machine()
    db = os.path.join(tmp, f"{server_name}.sqlite3" if settings == SSE else "unused.sqlite3")
    try:
        if settings == SSE:
            if os.path.exists(db):
                os.remove(db)
            migrate(db)
        env = {"BENCH_STREAMS_DB": db, "BENCH_STREAMS_MAX_STREAMS": str(max(10_000, args.streams + 100))}
        with (
            serve(server_name, settings, args=_server_args(args, server_name), env=env) as server,
            httpx.Client(trust_env=False, timeout=60.0) as http,
        ):
            print(f"[part 1, {server_name}, {label}] pid {server.pid} on {server.base}", file=sys.stderr)
            idle_round(args, server, http, 1, 0)  # warm-up: one stream, one event, closed
            time.sleep(0.5)
            row.before = snapshot(server.pid, db)
            idle_round(args, server, http, args.streams, 1, row, db)
            time.sleep(1.0)  # let the threads of the closed streams end
            row.after = snapshot(server.pid, db)
            print(
                f"[part 1, {server_name}, {label}] {row.connected} connected in {row.connect_seconds:.1f} s, "
                f"{row.received} got the event",
                file=sys.stderr,
            )
    except (RuntimeError, OSError, httpx.HTTPError, subprocess.SubprocessError) as exc:
        row.error = f"{type(exc).__name__}: {exc}"
        print(f"[part 1, {server_name}, {label}] FAILED: {row.error}", file=sys.stderr)
    row.other_cpu, row.wall = machine.other()
    return row


def _answers(base: str) -> bool:
    """Whether the server answers a plain request (a second after the last stream closed)."""
    time.sleep(1.0)
    try:
        return httpx.get(f"{base}/ping/", timeout=3.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def fast_row(
    args: argparse.Namespace, server_name: str, label: str, settings: str, path: str, tmp: str
) -> FastRow:
    """One stream's rate on a fresh server, then the first events of fresh connections on another."""
    row = FastRow(label, server_name)
    machine = Machine()
    env = {"BENCH_STREAMS_DB": os.path.join(tmp, f"{server_name}.sqlite3")}
    server_args = _server_args(args, server_name)
    base_cfg = {"path": path, "stream_timeout": args.first_timeout}
    try:
        with serve(server_name, settings, args=server_args, env=env) as server:
            print(f"[part 2, {server_name}, {label}] pid {server.pid}: one stream", file=sys.stderr)
            cfg = {
                **base_cfg,
                "mode": "rate",
                **_address(server),
                "warmup": args.warmup,
                "seconds": args.seconds,
            }
            client = ClientProcess(__file__, cfg)
            try:
                client.expect("connected", 30)
                cpu, start = cpu_seconds(server.pid), time.monotonic()
                message = client.expect_any(("counting", "result"), args.first_timeout + args.warmup + 30)
                if message.pop("event") == "counting":  # else no response: the window was the wait
                    cpu, start = cpu_seconds(server.pid), time.monotonic()
                    message = client.expect("result", args.seconds + 30)
                result = message
                row.server_cpu = (cpu_seconds(server.pid) - cpu) / (time.monotonic() - start)
            finally:
                client.close()
            row.events, row.seconds, row.wire, row.gzip = (
                result[k] for k in ("events", "seconds", "wire", "gzip")
            )
            row.client_cpu = result["cpu"] / result["seconds"] if result["seconds"] else 0.0
            row.rate_error = result["error"]
            row.alive = _answers(server.base)
        with serve(server_name, settings, args=server_args, env=env) as server:
            print(f"[part 2, {server_name}, {label}] pid {server.pid}: first events", file=sys.stderr)
            cfg = {
                **base_cfg,
                "path": FIRST,
                "mode": "first",
                **_address(server),
                "connections": args.connections,
            }
            client = ClientProcess(__file__, cfg)
            try:
                result = client.expect("result", args.connections * (args.first_timeout + 1) + 30)
            finally:
                client.close()
            row.times, row.first_error = result["times"], result["error"]
    except (RuntimeError, OSError, httpx.HTTPError) as exc:
        row.error = f"{type(exc).__name__}: {exc}"
        print(f"[part 2, {server_name}, {label}] FAILED: {row.error}", file=sys.stderr)
    row.other_cpu, row.wall = machine.other()
    return row


# ------------------------------------------------------------ report


def _x(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or not theirs or math.isnan(ours) or math.isnan(theirs):
        return "n/a"
    return f"{ours / theirs:.2f}x"


def _trio(row: IdleRow, name: str) -> str:
    """``name`` of the before > open > after snapshots."""
    return ">".join("-" if s is None else str(getattr(s, name)) for s in (row.before, row.open, row.after))


def report_idle(args: argparse.Namespace, rows: list[IdleRow]) -> None:
    line = "{:<14} {:<8} {:>13} {:>9} {:>18} {:>10} {:>7} {:>7} {:>13}"
    print(
        line.format(
            "row", "server", "connected", "connect s", "threads b>o>a", "KiB/stream", "fds", "db fds",
            "received",
        )
    )  # fmt: skip
    for row in rows:
        if row.error and row.open is None:
            print(line.format(row.label, row.server, "FAILED", "", "", "", "", "", ""))
            continue
        assert row.open is not None
        print(
            line.format(
                row.label,
                row.server,
                f"{row.connected}/{row.streams}",
                f"{row.connect_seconds:.2f}",
                _trio(row, "threads"),
                f"{row.kib_per_stream:.1f}",
                row.open.fds,
                row.open.db_fds if row.label == "django-sse" else "-",
                f"{row.received}/{row.streams}",
            )
        )
    print()
    for server in dict.fromkeys(r.server for r in rows):
        by = {r.label: r for r in rows if r.server == server and r.open is not None}
        ours = by.get("django-sse")
        parts = []
        for label in ("plain + stack", "plain bare"):
            theirs = by.get(label)
            if ours is not None and theirs is not None:
                parts.append(
                    f"django-sse / {label}: connect {_x(ours.connect_seconds, theirs.connect_seconds)}, "
                    f"KiB/stream {_x(ours.kib_per_stream, theirs.kib_per_stream)}"
                )
        if parts:
            print(f"{server}: " + "; ".join(parts))
    print()
    for row in rows:
        where = f"{row.label} on {row.server}"
        if row.error:
            print(f"{where}: FAILED: {row.error}")
        if row.open is None or row.before is None or row.after is None:
            continue
        delivery = (
            f"the event reached the first stream {row.delivery[0]:.2f} s and the last "
            f"{row.delivery[1]:.2f} s after the publish request started"
            if row.delivery
            else "no stream got the event"
        )
        print(
            f"{where}: RSS {row.before.rss / 1024:.1f} MiB before -> {row.open.rss / 1024:.1f} open -> "
            f"{row.after.rss / 1024:.1f} after; fds {_trio(row, 'fds')}; db fds {_trio(row, 'db_fds')}; "
            f"gzip'd streams {row.gzip}; the server counted {row.subscribed} open; {delivery}; "
            f"closed early {row.closed}; still counted open after the clients left {row.leftover}; "
            f"connection errors {row.connect_errors or 'none'}; "
            f"other processes {_share(row.other_cpu, row.wall)} over {row.wall:.0f} s"
        )


def _share(cpu: float, wall: float) -> str:
    cpus = os.cpu_count() or 1
    return f"{cpu / max(wall, 1e-9) / cpus * 100:.1f}% of the {cpus} CPUs"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def report_fast(args: argparse.Namespace, rows: list[FastRow]) -> None:
    line = "{:<24} {:<8} {:>10} {:>10} {:>5} {:>8} {:>8} {:>6} {:>11} {:>11} {:>9}"
    print(
        line.format(
            "row", "server", "events/s", "wire B/evt", "gzip", "srv CPU", "cli CPU", "alive",
            "1st p50 ms", "1st p90 ms", "1st ok",
        )
    )  # fmt: skip
    for row in rows:
        print(
            line.format(
                row.label,
                row.server,
                "FAILED" if row.error and not row.seconds else f"{row.rate:.0f}",
                f"{row.wire / row.events:.0f}" if row.events else "-",
                {True: "yes", False: "no", None: "-"}[row.gzip],
                f"{row.server_cpu * 100:.0f}%",
                f"{row.client_cpu * 100:.0f}%",
                {True: "yes", False: "NO", None: "-"}[row.alive],
                _ms(row.first(50)),
                _ms(row.first(90)),
                f"{len(row.times)}/{args.connections}",
            )
        )
    print()
    for server in dict.fromkeys(r.server for r in rows):
        by = {r.label: r for r in rows if r.server == server}
        ours = by.get("django-sse")
        if ours is None:
            continue
        for label, theirs in by.items():
            if theirs is not ours:
                print(
                    f"{server}: django-sse / {label}: events/s {_x(ours.rate, theirs.rate)}, "
                    f"first event p50 {_x(ours.first(50), theirs.first(50))}"
                )
    print()
    for row in rows:
        notes = [f"{row.error}"] if row.error else []
        if row.rate_error:
            notes.append(f"the stream: {row.rate_error}")
        if row.alive is False:
            notes.append("the server did not answer /ping/ once the stream had closed")
        if row.first_error:
            notes.append(
                f"first events: stopped after {len(row.times)} of {args.connections} connections: "
                f"{row.first_error}"
            )
        notes.append(f"other processes {_share(row.other_cpu, row.wall)} over {row.wall:.0f} s")
        print(f"{row.label} on {row.server}: " + "; ".join(notes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, default=10000, help="idle streams per row (default 10000)")
    parser.add_argument(
        "--servers", default="uvicorn,daphne", help="comma-separated (default uvicorn,daphne)"
    )
    parser.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="uvicorn's --loop (default auto)",
    )
    parser.add_argument("--parts", default="1,2", help="which parts to run (default 1,2)")
    parser.add_argument(
        "--deadline", type=float, default=30.0, help="seconds for the published event (default 30)"
    )
    parser.add_argument("--connect-timeout", type=float, default=900.0, help="seconds to open all streams")
    parser.add_argument(
        "--stream-timeout", type=float, default=120.0, help="seconds for one stream to answer"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="part 2: seconds of counting (default 3)")
    parser.add_argument(
        "--warmup", type=float, default=0.5, help="part 2: seconds before counting (default 0.5)"
    )
    parser.add_argument(
        "--connections", type=int, default=200, help="part 2: fresh connections (default 200)"
    )
    parser.add_argument(
        "--first-timeout",
        type=float,
        default=5.0,
        help="part 2: seconds a connection may wait for its first event",
    )
    args = parser.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    parts = {p.strip() for p in args.parts.split(",")}
    if not servers or any(s not in ("uvicorn", "daphne") for s in servers):
        parser.error("--servers: uvicorn and/or daphne")
    if args.streams < 1 or args.connections < 1 or args.seconds <= 0 or not parts <= {"1", "2"}:
        parser.error("--streams, --connections and --seconds must be positive; --parts 1, 2 or 1,2")
    raise_nofile(args.streams)  # before any server or client process starts: they inherit it

    packages = ", ".join(f"{p} {version(p)}" for p in ("django", "uvicorn", "daphne", "twisted", "uvloop"))
    if args.loop == "auto":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            loop = "--loop auto (asyncio)"
        else:
            loop = "--loop auto (uvloop)"
    else:
        loop = f"--loop {args.loop}"
    print(f"Python {platform.python_version()}, {packages}; {os.cpu_count()} CPUs")
    print(
        f"servers: uvicorn {loop}, daphne (Twisted asyncio reactor); one process each, a fresh one per row; "
        f"clients send Accept-Encoding: gzip"
    )
    machine = Machine()
    idle_rows: list[IdleRow] = []
    fast_rows: list[FastRow] = []
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as tmp:
        if "1" in parts:
            for server_name in servers:
                for label, settings in IDLE_ROWS:
                    idle_rows.append(idle_row(args, server_name, label, settings, tmp))
        if "2" in parts:
            for server_name in servers:
                if "1" not in parts:
                    migrate(os.path.join(tmp, f"{server_name}.sqlite3"))
                for label, settings, path in FAST_ROWS:
                    fast_rows.append(fast_row(args, server_name, label, settings, path, tmp))
    other, wall = machine.other()
    if idle_rows:
        print(
            f"\nPart 1: {args.streams} idle streams per row from one client process (uvloop, raw sockets, at "
            f"most {CONNECT_CONCURRENCY} connecting at once); one event published to them all\n"
        )
        report_idle(args, idle_rows)
    if fast_rows:
        print(
            f"\nPart 2: one stream of 100-byte events yielded back to back, counted for {args.seconds:g} s "
            f"after {args.warmup:g} s; then {args.connections} fresh connections one after another, "
            "connect() to the first data event\n"
        )
        report_fast(args, fast_rows)
    print(
        f"\nmachine noise: other processes used {other:.1f} CPU-s over the {wall:.0f} s run, "
        f"{_share(other, wall)}"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == [CLIENT_FLAG]:
        run_client(_client, sys.argv[2])
    else:
        main()
