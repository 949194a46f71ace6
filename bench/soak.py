"""Soak: minutes of churn against one server, then everything it held must be gone.

Run from the repository root: ``.venv/bin/python bench/soak.py [--seconds 120] [--servers uvicorn,daphne]``.
For each server (a fresh process on ``benchproject.settings_soak``: ``startproject``'s middleware,
SQLite history) one client process, at the same time and for ``--seconds``:

- publishes ``--rate`` events a second of ``--size`` bytes (4 in 5 to ``room.bench``, the rest to
  other rooms), through a view that calls ``publish()``;
- reads ``room.bench`` with ``--readers`` steady clients and ``--slow`` clients that stop reading for
  seconds at a time (so the server cuts them past ``CLIENT_BUFFER_BYTES``, ``--buffer-kib``), every one
  reconnecting with ``Last-Event-ID`` like ``EventSource`` whenever its connection ends; each must see
  every ``room.bench`` id exactly once and in order;
- opens and drops streams with ``--churn`` tasks, each leaving at a moment drawn in turn: before
  sending the request, right after it, at the response headers, at the first event, after a random
  delay, and in the middle of a replay (an old ``Last-Event-ID``); half of them with a reset instead of a
  FIN; on ``room.bench`` and on rooms that come and go.

The server's threads, file descriptors (all, sockets, database files), subscriptions, open streams and
RSS are read from outside (``/proc`` and the public counts) after a warm-up, at their peak during the
soak, once every client has gone, and after ``malloc_trim(0)``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
from harness import (
    CLIENT_FLAG,
    POLL,
    REPO_ROOT,
    ClientProcess,
    ResponseReader,
    bench_env,
    emit,
    log_tail,
    open_fds,
    raise_nofile,
    rss_kib,
    run_client,
    serve,
    threads,
    wait_until,
)

SETTINGS = "benchproject.settings_soak"
ROOM = "/soak/room/{}/"
MOMENTS = ("connect", "request", "headers", "event", "random", "replay")
OTHER_ROOMS = 50  # room.c0 .. room.c49: subscribed to and left by the churn
SETTLE = 15.0  # seconds the server has, once every client has gone, to be back to where it started
CATCH_UP = 60.0  # seconds the readers have, once publishing stops, to reach the last id
SOCKETS = 4096  # RLIMIT_NOFILE room, for the client process and the servers (which inherit it)


# ============================================================ client side


class Stream(ResponseReader):
    """One ``EventSource``-like connection over a raw socket: the ids of the complete events it read."""

    def __init__(self, request: bytes) -> None:
        super().__init__(request)
        self.body = b""  # decoded body not yet split into events
        self.ids: list[int] = []
        self.headers = asyncio.Event()  # set at the response headers, or when the connection ends
        self.event = asyncio.Event()  # set at the first complete event, or when the connection ends
        self.lost = asyncio.Event()

    def started(self, status: int, headers: dict[str, str]) -> bool:
        self.headers.set()
        return True

    def body_received(self, body: bytes, wire: int) -> None:
        self.body += body
        *events, self.body = self.body.split(b"\n\n")
        for block in events:
            fields = block.split(b"\n")
            if any(line.startswith(b"data:") for line in fields):  # what EventSource dispatches
                self.ids.extend(int(line[3:]) for line in fields if line.startswith(b"id:"))
                self.event.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.headers.set()
        self.event.set()
        self.lost.set()

    def leave(self, reset: bool) -> None:
        if self.transport is None:
            return
        if reset:  # SO_LINGER 0: close() sends a RST, as a crashed client or a dropped network does
            sock = self.transport.get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.close()


def _request(cfg: dict[str, Any], room: str, last_id: int | None) -> bytes:
    last = f"Last-Event-ID: {last_id}\r\n" if last_id is not None else ""
    return (
        f"GET {ROOM.format(room)} HTTP/1.1\r\nHost: 127.0.0.1:{cfg['port']}\r\n"
        f"Accept: text/event-stream\r\nCache-Control: no-cache\r\n{last}\r\n"
    ).encode()


async def _open(cfg: dict[str, Any], stream: Stream, rcvbuf: int | None = None) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", cfg["port"]))
    except OSError:
        sock.close()
        raise
    await loop.create_connection(lambda: stream, sock=sock)


class Verified:
    """A client of ``room.bench`` that reconnects with ``Last-Event-ID`` whenever its stream ends."""

    def __init__(self, cfg: dict[str, Any], slow: bool) -> None:
        self.cfg, self.slow = cfg, slow
        self.ids: list[int] = []
        self.connects = 0
        self.stream: Stream | None = None

    def last_id(self) -> int:
        """The id of the last event read, on the current connection or before it."""
        current = self.stream.ids if self.stream is not None else []
        return (current or self.ids or [0])[-1]

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.stream = stream = Stream(_request(self.cfg, "bench", self.ids[-1] if self.ids else None))
            self.connects += 1
            try:
                await _open(self.cfg, stream, rcvbuf=4096 if self.slow else None)
            except OSError:
                await asyncio.sleep(0.5)
                continue
            if self.slow:
                await self._read_slowly(stream, stop)
            await _until(stream.lost, stop)
            self.ids.extend(stream.ids)
            stream.leave(reset=False)
            if not stop.is_set() and not self.slow:
                await asyncio.sleep(0.1)  # EventSource's reconnection delay, shortened

    async def _read_slowly(self, stream: Stream, stop: asyncio.Event) -> None:
        assert stream.transport is not None
        while self.slow and not stream.lost.is_set() and not stop.is_set():
            stream.transport.pause_reading()
            await _until(asyncio.Event(), stop, random.uniform(2.0, 20.0))
            stream.transport.resume_reading()
            await _until(stream.lost, stop, 0.5)


async def _until(event: asyncio.Event, stop: asyncio.Event, timeout: float | None = None) -> None:
    """Wait for ``event`` or ``stop``, at most ``timeout`` seconds."""
    waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(stop.wait())]
    await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()


def _newest(verified: list[Verified]) -> int:
    return max((v.last_id() for v in verified), default=0)


async def _churn(
    cfg: dict[str, Any],
    stop: asyncio.Event,
    verified: list[Verified],
    left: Counter[str],
) -> None:
    turn = random.randrange(len(MOMENTS))
    while not stop.is_set():
        moment = MOMENTS[turn % len(MOMENTS)]
        turn += 1
        room = "bench" if random.random() < 0.5 else f"c{random.randrange(OTHER_ROOMS)}"
        last_id = None
        newest = _newest(verified)
        if moment == "replay" and newest > 1:
            room, last_id = "bench", random.randrange(max(1, newest - 2000), newest)
        stream = Stream(b"" if moment == "connect" else _request(cfg, room, last_id))
        reset = random.random() < 0.5
        try:
            await _open(cfg, stream)
        except OSError:
            left["refused"] += 1
            await asyncio.sleep(0.1)
            continue
        if moment == "headers":
            await asyncio.wait_for(stream.headers.wait(), 10)
        elif moment == "event":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stream.event.wait(), 2)
        elif moment == "random":
            await asyncio.sleep(random.uniform(0, 0.3))
        elif moment == "replay":
            await asyncio.sleep(random.uniform(0, 0.05))
        stream.leave(reset)
        left[moment] += 1
        await asyncio.sleep(0)


def _report(client: Verified, published: list[int]) -> dict[str, int]:
    seen = Counter(client.ids)
    return {
        "lost": len(set(published) - seen.keys()),
        "duplicated": sum(n - 1 for n in seen.values() if n > 1),
        "out_of_order": sum(1 for a, b in zip(client.ids, client.ids[1:], strict=False) if b <= a),
        "connects": client.connects,
    }


async def _client(cfg: dict[str, Any]) -> None:
    stop, done = asyncio.Event(), asyncio.Event()
    verified = [Verified(cfg, slow=False) for _ in range(cfg["readers"])]
    verified += [Verified(cfg, slow=True) for _ in range(cfg["slow"])]
    readers = [asyncio.ensure_future(v.run(done)) for v in verified]
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go": all subscribed
    assert line.strip() == "go", line
    publisher = f"http://127.0.0.1:{cfg['port']}/soak/publisher/"
    left: Counter[str] = Counter()
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        params = {k: cfg[k] for k in ("rate", "size", "seconds")}
        (await http.post(publisher, params=params)).raise_for_status()
        tasks = [asyncio.ensure_future(_churn(cfg, stop, verified, left)) for _ in range(cfg["churn"])]
        started = time.monotonic()
        while time.monotonic() - started < cfg["seconds"]:
            await asyncio.sleep(min(1.0, cfg["seconds"] - (time.monotonic() - started)))
            emit("progress", seconds=round(time.monotonic() - started), left=dict(left))
        stop.set()
        await asyncio.gather(*tasks)
        while (state := (await http.get(publisher)).json())["running"]:  # noqa: ASYNC110 (the server's)
            await asyncio.sleep(POLL)
    published: list[int] = state["ids"]
    # Every reader reads now (slow ones too) until it has the last id, or CATCH_UP runs out.
    for v in verified:
        v.slow = False
    deadline = time.monotonic() + CATCH_UP
    while time.monotonic() < deadline and any(v.last_id() < published[-1] for v in verified):  # noqa: ASYNC110
        await asyncio.sleep(POLL)
    done.set()
    for v in verified:
        if v.stream is not None:
            v.stream.leave(reset=False)
    await asyncio.gather(*readers)
    emit(
        "done",
        left=dict(left),
        published=len(published),
        readers=[_report(v, published) for v in verified[: cfg["readers"]]],
        slow=[_report(v, published) for v in verified[cfg["readers"] :]],
    )
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "exit"


# ============================================================ benchmark side


@dataclass
class Snapshot:
    threads: int
    fds: int
    sockets: int
    db_files: int
    db_connections: int
    subscriptions: int
    open_streams: int
    rss_kib: int
    objects: int

    COLUMNS = (
        "threads",
        "fds",
        "sockets",
        "db files",
        "connections",
        "subscriptions",
        "open streams",
        "RSS MiB",
        "objects",
    )

    def cells(self) -> list[str]:
        return [
            *(str(v) for v in (self.threads, self.fds, self.sockets, self.db_files)),
            *(str(v) for v in (self.db_connections, self.subscriptions, self.open_streams)),
            f"{self.rss_kib / 1024:.1f}",
            str(self.objects),
        ]


def stats(base: str, trim: bool = False, objects: bool = False) -> dict[str, Any]:
    params = {"trim": "1"} if trim else {"objects": "1"} if objects else {}
    response = httpx.get(f"{base}/soak/stats/", params=params, trust_env=False, timeout=30)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def snapshot(pid: int, base: str, db: str, trim: bool = False) -> Snapshot:
    # Before the stats request, whose socket the server may not have closed yet, and whose worker
    # thread may not have ended.
    fds, running = open_fds(pid), threads(pid)
    counts = stats(base, trim, objects=True)
    return Snapshot(
        threads=running,
        fds=len(fds),
        sockets=sum(target.startswith("socket:") for target in fds),
        db_files=sum(target.startswith(db) for target in fds),
        db_connections=len(counts["connections"]),
        subscriptions=counts["subscriptions"],
        open_streams=counts["open_streams"],
        rss_kib=rss_kib(pid),
        objects=counts["objects"],
    )


def settled(pid: int, start: Snapshot) -> bool:
    fds = open_fds(pid)
    return threads(pid) <= start.threads and sum(t.startswith("socket:") for t in fds) <= start.sockets


def peak(a: Snapshot, b: Snapshot) -> Snapshot:
    return Snapshot(*(max(x, y) for x, y in zip(vars(a).values(), vars(b).values(), strict=True)))


def migrate(db: str) -> None:
    env = bench_env(SETTINGS, {"BENCH_STREAMS_DB": db})
    subprocess.run([sys.executable, "-m", "django", "migrate", "-v", "0"], cwd=REPO_ROOT, env=env, check=True)


def run_server(args: argparse.Namespace, server: str, tmp: str) -> bool:
    db = os.path.join(tmp, f"soak-{server}.sqlite3")
    migrate(db)
    env = {"BENCH_STREAMS_DB": db, "BENCH_SOAK_BUFFER_BYTES": str(args.buffer_kib * 1024)}
    extra = ["--loop", args.loop] if server == "uvicorn" else []
    with serve(server, SETTINGS, args=extra, env=env) as srv:
        cfg = {
            "port": int(srv.base.rsplit(":", 1)[1]),
            **{k: getattr(args, k) for k in ("seconds", "churn", "readers", "slow", "rate", "size")},
        }
        # Warm-up: a round of the same clients for a few seconds, so that what a server creates once
        # (its thread pool, the dispatcher, database connections) is in the baseline, not in the growth.
        for round_cfg, label in ((dict(cfg, seconds=3), "warm-up"), (cfg, "soak")):
            if label == "soak":
                start = high = snapshot(srv.pid, srv.base, db)
            client = ClientProcess(__file__, round_cfg)
            try:
                wait_until(
                    lambda: stats(srv.base)["subscriptions"] >= args.readers + args.slow,
                    30,
                    "the readers to subscribe",
                )
                client.send("go")
                while (message := client.expect_any(("progress", "done"), CATCH_UP + 60))["event"] != "done":
                    if label == "soak":
                        high = peak(high, snapshot(srv.pid, srv.base, db))
                        if message["seconds"] % 10 == 0:
                            dropped = sum(message["left"].values())
                            rss = f"RSS {rss_kib(srv.pid) / 1024:.1f} MiB"
                            print(f"  {server}: {message['seconds']} s, {dropped} dropped, {rss}", flush=True)
            finally:
                client.close()
            wait_until(
                lambda: stats(srv.base)["open_streams"] == 0 and stats(srv.base)["subscriptions"] == 0,
                30,
                "every stream to be gone",
            )
        # Idle threads and connections go at their own pace (an executor's threads, a closed
        # connection's garbage): what is still there after SETTLE seconds counts as left behind.
        with contextlib.suppress(RuntimeError):
            wait_until(lambda: settled(srv.pid, start), SETTLE, "the server to settle")
        end = snapshot(srv.pid, srv.base, db)
        trimmed = snapshot(srv.pid, srv.base, db, trim=True)
        counts = stats(srv.base)
        log = log_tail(srv.log, 100_000)
    return report(args, server, message, start, high, end, trimmed, counts, log)


def report(
    args: argparse.Namespace,
    server: str,
    done: dict[str, Any],
    start: Snapshot,
    high: Snapshot,
    end: Snapshot,
    trimmed: Snapshot,
    counts: dict[str, Any],
    log: str,
) -> bool:
    print(f"\n{server}: {args.seconds} s of soak")
    print(f"{'':26}" + "".join(f"{c:>14}" for c in Snapshot.COLUMNS))
    for label, snap in (
        ("start (warmed up, idle)", start),
        ("peak during the soak", high),
        ("end (every client gone)", end),
        ("end, after malloc_trim", trimmed),
    ):
        print(f"{label:26}" + "".join(f"{c:>14}" for c in snap.cells()))
    left = done["left"]
    print(f"streams dropped: {sum(left.values())} ({', '.join(f'{k} {v}' for k, v in sorted(left.items()))})")
    print(f"events published: {done['published']} to room.bench (and the rest to {OTHER_ROOMS} other rooms)")
    ok = True
    for kind in ("readers", "slow"):
        results = done[kind]
        totals = {k: sum(r[k] for r in results) for k in ("lost", "duplicated", "out_of_order", "connects")}
        print(
            f"{len(results)} {'steady' if kind == 'readers' else 'slow'} readers: lost {totals['lost']}, "
            f"duplicated {totals['duplicated']}, out of order {totals['out_of_order']}, "
            f"connections {totals['connects']}"
        )
        ok = ok and not (totals["lost"] or totals["duplicated"] or totals["out_of_order"])
    print(f"server counts: slow-client cuts {counts['slow_clients']}, refused {counts['refused']}")
    grown = {
        "threads": end.threads - start.threads,
        "sockets": end.sockets - start.sockets,
        "other fds": (end.fds - end.sockets - end.db_files) - (start.fds - start.sockets - start.db_files),
        "database connections": end.db_connections - start.db_connections,
        "subscriptions": end.subscriptions,
        "open streams": end.open_streams,
    }
    print("left behind: " + ", ".join(f"{k} {v:+d}" for k, v in grown.items()))
    print(
        f"database file descriptors: {start.db_files} -> {end.db_files} (SQLite keeps a closed connection's"
        " descriptor while another connection of the process holds a lock on the file, and reuses it)"
    )
    print(
        f"RSS: {start.rss_kib / 1024:.1f} -> peak {high.rss_kib / 1024:.1f} -> end {end.rss_kib / 1024:.1f}"
        f" -> trimmed {trimmed.rss_kib / 1024:.1f} MiB ({(trimmed.rss_kib - start.rss_kib) / 1024:+.1f} MiB)"
    )
    print(f"Python objects (tracked by the garbage collector): {start.objects} -> {trimmed.objects}")
    tracebacks = log.count("Traceback")
    print(f"server log: {tracebacks} tracebacks, {log.count('slow client')} slow-client lines")
    return ok and all(v <= 0 for v in grown.values()) and not tracebacks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--servers", default="uvicorn,daphne")
    parser.add_argument("--loop", default="asyncio", help="uvicorn's --loop (asyncio, uvloop)")
    parser.add_argument("--churn", type=int, default=40, help="tasks opening and dropping streams")
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument("--slow", type=int, default=4)
    parser.add_argument("--rate", type=float, default=20.0, help="publishes per second")
    parser.add_argument("--size", type=int, default=32000, help="bytes of data per event")
    parser.add_argument("--buffer-kib", type=int, default=256, help="CLIENT_BUFFER_BYTES, in KiB")
    args = parser.parse_args()
    raise_nofile(SOCKETS)
    print(
        f"soak: {args.churn} churn tasks, {args.readers} readers, {args.slow} slow readers, "
        f"{args.rate:g} publishes/s of {args.size} B, CLIENT_BUFFER_BYTES {args.buffer_kib} KiB"
    )
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_server(args, server, tmp) for server in args.servers.split(",")]
    print("\nverdict: " + ("nothing lost, nothing left behind" if all(results) else "FAILED (see above)"))
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == CLIENT_FLAG:
        run_client(_client, sys.argv[2], sockets=SOCKETS)
    else:
        main()
