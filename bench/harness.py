"""What the benchmarks share: start a server on a free 127.0.0.1 port, stop it by its PID, read /proc,
and drive a client process (a benchmark script run again with ``CLIENT_FLAG``) over JSON lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import queue
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar, cast

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
APP = "benchproject.asgi:application"
#: The same project behind django-sse's optional ASGI entry point (django_sse.asgi).
APP_SSE = "benchproject.asgi_sse:application"

SERVERS: dict[str, Callable[[int, str], list[str]]] = {
    "daphne": lambda port, app: [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app],
    "uvicorn": lambda port, app: [
        *(sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)),
        *("--log-level", "warning", "--no-access-log", app),
    ],
}
READY_ATTEMPTS = 200  # x 0.1 s
STOP_TIMEOUT = 5.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CLIENT_FLAG = "--run-client-process"  # internal: the benchmark script is also its client process
POLL = 0.1  # seconds between checks in the bounded waiting loops
GZIP_WBITS = 16 + zlib.MAX_WBITS


class Server(NamedTuple):
    base: str  # e.g. http://127.0.0.1:8123
    pid: int
    log: IO[bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(log: IO[bytes], size: int = 3000) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-size:]


def bench_env(settings: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a process that runs the bench project with ``settings``."""
    pythonpath = os.pathsep.join([str(BENCH_DIR), str(REPO_ROOT)])
    return {**os.environ, "DJANGO_SETTINGS_MODULE": settings, "PYTHONPATH": pythonpath, **(extra or {})}


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGTERM ``proc`` (by its own PID), then SIGKILL if it has not exited after STOP_TIMEOUT."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


@contextlib.contextmanager
def serve(
    server: str,
    settings: str,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    app: str = APP,
) -> Iterator[Server]:
    """Run ``server`` (with extra command-line ``args``) on ``settings`` on a free 127.0.0.1 port.

    Yields once ``/ping/`` answers 200; stops the server by its PID on the way out.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        command = [*SERVERS[server](port, app), *args]
        proc = subprocess.Popen(command, cwd=REPO_ROOT, env=bench_env(settings, env), stdout=log, stderr=log)
        try:
            with httpx.Client(trust_env=False, timeout=1.0) as client:
                for _ in range(READY_ATTEMPTS):
                    if proc.poll() is not None:
                        break
                    with contextlib.suppress(httpx.TransportError):
                        if client.get(f"{base}/ping/").status_code == 200:
                            break
                    time.sleep(0.1)
                else:
                    raise RuntimeError(f"{server} not ready on {base}:\n{log_tail(log)}")
            if proc.poll() is not None:
                raise RuntimeError(f"{server} exited with {proc.returncode}:\n{log_tail(log)}")
            yield Server(base, proc.pid, log)
        finally:
            stop(proc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name may contain spaces: the fields that follow start after its ")".
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def proc_status(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as a dict, e.g. ``VmRSS`` -> ``"51234 kB"``, ``Threads`` -> ``"3"``."""
    with open(f"/proc/{pid}/status") as status:
        return {key: value.strip() for key, _, value in (line.partition(":") for line in status)}


def rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB (VmRSS)."""
    return int(proc_status(pid)["VmRSS"].split()[0])


def threads(pid: int) -> int:
    return int(proc_status(pid)["Threads"])


def open_fds(pid: int) -> list[str]:
    """What the open file descriptors of process ``pid`` point to (``/proc/<pid>/fd``)."""
    targets = []
    directory = f"/proc/{pid}/fd"
    for fd in os.listdir(directory):
        with contextlib.suppress(OSError):  # closed meanwhile
            targets.append(os.readlink(f"{directory}/{fd}"))
    return targets


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL)


def raise_nofile(connections: int) -> None:
    """Raise RLIMIT_NOFILE so that ``connections`` sockets fit (children inherit it).

    The soft limit goes up to the hard one, and the hard one too if it is too low (needs
    CAP_SYS_RESOURCE, e.g. root outside a container that drops it).
    """
    need = connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return
        except (ValueError, OSError):
            print(f"warning: RLIMIT_NOFILE hard limit {hard} < {need}: connections may fail", file=sys.stderr)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ------------------------------------------------------------ redis-server


@dataclass
class Redis:
    """A redis-server of our own on a free 127.0.0.1 port, without persistence; stopped by its PID."""

    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *args: str) -> str:
        request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(request.encode())
            reply = sock.recv(65536)
            if reply.startswith(b"$"):  # a bulk string: read all of it
                size = int(reply[1 : reply.index(b"\r\n")])
                while len(reply) < reply.index(b"\r\n") + 2 + size + 2:
                    reply += sock.recv(65536)
        return reply.decode(errors="replace")

    def publishes(self) -> int:
        """How many PUBLISH commands the server has executed (INFO commandstats)."""
        for line in self.command("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_publish:"):
                return int(line.split("calls=")[1].split(",")[0])
        return 0


@contextlib.contextmanager
def redis_server(directory: str) -> Any:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [*command, "--dir", directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    redis = Redis(port, proc)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError):
                if "PONG" in redis.command("PING"):
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"redis-server did not answer on port {port}")
            time.sleep(0.05)
        yield redis
    finally:
        stop(proc)


# ------------------------------------------------------------ client process


def emit(event: str, **data: Any) -> None:
    """In a client process: report ``event`` to the benchmark, one JSON line on stdout."""
    print(json.dumps({"event": event, **data}), flush=True)


def client_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop for client processes, if installed (uvicorn[standard] brings it)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def split_head(buffer: bytes) -> tuple[int, dict[str, str], bytes] | None:
    """A response's status, its headers (names and values lower-cased) and the bytes after them;
    ``None`` while ``buffer`` does not hold the whole head yet."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buffer[:end].decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip().lower() for k, _, v in (h.partition(":") for h in lines[1:])}
    return int(lines[0].split(" ", 2)[1]), headers, buffer[end + 4 :]


class BodyDecoder:
    """A response body as the application wrote it: chunked framing undone, then gzip. Django 5.2's
    GZipMiddleware makes every chunk of an async stream a gzip member of its own: inflated in turn."""

    def __init__(self, chunked: bool, gzip: bool) -> None:
        self.chunked = chunked
        self.pending = b""  # an incomplete chunk-size line
        self.left = 0  # bytes of the current chunk still to come, its closing CRLF included
        self.ended = False
        self.inflate = zlib.decompressobj(GZIP_WBITS) if gzip else None

    def feed(self, data: bytes) -> bytes:
        if self.chunked:
            data = self._dechunk(data)
        if self.inflate is None:
            return data
        out = []
        while data:
            out.append(self.inflate.decompress(data))
            if not self.inflate.eof:
                break
            data = self.inflate.unused_data  # the next member
            self.inflate = zlib.decompressobj(GZIP_WBITS)
        return b"".join(out)

    def _dechunk(self, data: bytes) -> bytes:
        buf, out, i = self.pending + data, [], 0
        self.pending = b""
        while i < len(buf) and not self.ended:
            if not self.left:
                end = buf.find(b"\r\n", i)
                if end < 0:
                    self.pending = buf[i:]
                    break
                size = int(buf[i:end].split(b";", 1)[0], 16)
                i = end + 2
                if not size:
                    self.ended = True
                    break
                self.left = size + 2
            take = min(self.left, len(buf) - i)
            payload = min(take, self.left - 2)  # the CRLF after the chunk is framing
            if payload > 0:
                out.append(buf[i : i + payload])
            self.left -= take
            i += take
        return b"".join(out)


class ResponseReader(asyncio.Protocol):
    """One HTTP/1.1 response read over a raw socket by a client process: writes ``request`` once
    connected, buffers the response head until it is whole, then hands the body on as the application
    wrote it (:class:`BodyDecoder`: chunked framing undone, gzip inflated if ``Content-Encoding`` says
    so). Subclasses add their own logic in :meth:`started` and :meth:`body_received`."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.head = b""  # the response head so far, until it is whole
        self.status = 0  # the response status, once the head is in
        self.gzip = False  # whether the body is gzip'd (Content-Encoding), once the head is in
        self.decoder: BodyDecoder | None = None  # once the head is in

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no asyncio.Transport subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.decoder is None:
            self.head += data
            head = split_head(self.head)
            if head is None:
                return
            self.status, headers, data = head
            self.head = b""
            self.gzip = headers.get("content-encoding") == "gzip"
            self.decoder = BodyDecoder(headers.get("transfer-encoding") == "chunked", self.gzip)
            if not self.started(self.status, headers):
                return
        self.body_received(self.decoder.feed(data), len(data))

    def started(self, status: int, headers: dict[str, str]) -> bool:
        """Called once, when the head is in (``headers``: names and values lower-cased); ``False``
        drops the body bytes that came with the head (e.g. after closing the transport)."""
        return True

    def body_received(self, body: bytes, wire: int) -> None:
        """Called for every read of the body: ``body`` decoded (it may be empty, e.g. a chunk-size
        line or a gzip header on its own), from ``wire`` bytes on the wire."""


class Child:
    """A helper process (``argv``, from the repository root) driven through its stdin and read through
    the JSON lines (see ``emit()``) on its stdout; ``name`` says which in errors."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """The next message, which must be ``event``; without its ``"event"`` key."""
        message = self.expect_any((event,), timeout)
        del message["event"]
        return message

    def expect_any(self, events: Sequence[str], timeout: float) -> dict[str, Any]:
        """The next message, which must be one of ``events``; its ``"event"`` key says which."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(
                f"{self.name} process: no {' or '.join(events)} within {timeout:g} s"
            ) from None
        if line is None:
            raise RuntimeError(f"{self.name} process exited ({self.proc.poll()}):\n{log_tail(self.stderr)}")
        message: dict[str, Any] = json.loads(line)
        if message["event"] not in events:
            raise RuntimeError(f"{self.name} process: expected {' or '.join(events)}, got {line}")
        return message

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        """Ask it to close its connections and exit; stop it by its PID if it does not."""
        with contextlib.suppress(OSError, ValueError):
            self.send("exit")
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            stop(self.proc)
        self.stderr.close()


class ClientProcess(Child):
    """``script`` run as a client process (``CLIENT_FLAG``) with ``cfg``."""

    def __init__(self, script: str, cfg: dict[str, Any]) -> None:
        super().__init__("client", [sys.executable, script, CLIENT_FLAG, json.dumps(cfg)])


# ------------------------------------------------------------ many streams from a client process

CONNECT_CONCURRENCY = 100  # connections being opened at once by a client process
#: Every published event has exactly one data line; preamble, id-only and heartbeat blocks have none.
DATA = b"data: "


def stream_request(host: str, port: int, path: str) -> bytes:
    """The GET request of an ``EventSource`` for ``path``."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
        "Cache-Control: no-cache\r\n\r\n"
    ).encode()


class CountingStream(asyncio.Protocol):
    """One SSE connection over a raw socket: counts events; a sampled one also parses their data
    (JSON with ``seq`` and ``t``, the publish time) into ``seqs`` and ``latencies``."""

    def __init__(self, request: bytes, sample: bool, ready: asyncio.Future[int]) -> None:
        self.request = request
        self.sample = sample
        self.ready = ready  # the response status, once the headers are in
        self.transport: asyncio.BaseTransport | None = None
        self.head = b""
        self.status = 0
        self.count = 0  # events (data lines) received
        self.tail = b""  # the end of the previous read, in case it cut a b"data: " in two
        self.buffer = b""  # sampled streams: unparsed bytes
        self.seqs: list[int] = []
        self.latencies: list[float] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.status:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            self.status = int(self.head.split(b" ", 2)[1])
            data, self.head = self.head[end + 4 :], b""
            if not self.ready.done():
                self.ready.set_result(self.status)
        # Chunked transfer coding frames whole ASGI body messages (one event each): it never
        # interrupts a data line, so counting and parsing can ignore it.
        chunk = self.tail + data
        self.count += chunk.count(DATA)
        self.tail = chunk[1 - len(DATA) :]
        if self.sample:
            self._parse(data, time.time())

    def _parse(self, data: bytes, arrived: float) -> None:
        self.buffer += data
        while True:
            start = self.buffer.find(DATA)
            if start < 0:
                self.buffer = self.buffer[1 - len(DATA) :]
                return
            end = self.buffer.find(b"\n", start)
            if end < 0:
                self.buffer = self.buffer[start:]
                return
            payload = json.loads(self.buffer[start + len(DATA) : end])
            self.seqs.append(payload["seq"])
            self.latencies.append(arrived - payload["t"])
            self.buffer = self.buffer[end + 1 :]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before the headers: {exc!r}"))


S = TypeVar("S", bound=CountingStream)


def counting_streams(
    make: Callable[[bytes, bool, asyncio.Future[int]], S], cfg: Mapping[str, Any], path: str
) -> list[S]:
    """``cfg["clients"]`` streams of ``path`` on ``cfg["host"]:cfg["port"]``, every
    ``cfg["sample_every"]``-th one sampled; not connected yet (see open_streams())."""
    loop = asyncio.get_running_loop()
    request = stream_request(cfg["host"], cfg["port"], path)
    return [make(request, i % cfg["sample_every"] == 0, loop.create_future()) for i in range(cfg["clients"])]


async def open_streams(streams: list[S], cfg: Mapping[str, Any]) -> tuple[list[S], dict[str, int]]:
    """Connect ``streams`` (``CONNECT_CONCURRENCY`` at a time, each given ``cfg["connect_timeout"]``
    for its headers); the ones answered 200, and the others counted by status or error."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_stream(stream: S) -> int:
        async with gate:
            await loop.create_connection(lambda: stream, cfg["host"], cfg["port"])
            return await asyncio.wait_for(stream.ready, cfg["connect_timeout"])

    outcomes = await asyncio.gather(*(open_stream(s) for s in streams), return_exceptions=True)
    errors = Counter(f"HTTP {o}" if isinstance(o, int) else type(o).__name__ for o in outcomes if o != 200)
    return [s for s, o in zip(streams, outcomes, strict=True) if o == 200], dict(errors)


async def close_streams(streams: Sequence[CountingStream]) -> None:
    """Close every stream's connection, and let the closes go out before the loop ends."""
    for stream in streams:
        if stream.transport is not None:
            stream.transport.close()
    await asyncio.sleep(0.5)  # the closes are written by the loop, which must still run


async def wait_delivered(
    live: Sequence[CountingStream], expected: int, timeout: float, base: Sequence[int] | None = None
) -> list[int]:
    """Wait (bounded by ``timeout``) until every stream has ``expected`` events more than its ``base``
    count (default 0), or has closed; the events each got since then."""
    since = [0] * len(live) if base is None else base
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(s.count - b >= expected or s.closed for s, b in zip(live, since, strict=True)):
            break
        await asyncio.sleep(POLL)
    return [s.count - b for s, b in zip(live, since, strict=True)]


def delivery_result(live: Sequence[CountingStream], counts: Sequence[int], expected: int) -> dict[str, Any]:
    """What the streams got, ``counts`` each of ``expected`` events (seqs 1..expected): the
    "result" a client process reports."""
    sampled = [s for s in live if s.sample]
    latencies = [x for s in sampled for x in s.latencies]
    in_order = list(range(1, expected + 1))
    return {
        "delivered": sum(counts),
        "complete": sum(c == expected for c in counts),
        "min_count": min(counts, default=0),
        "max_count": max(counts, default=0),
        "closed": sum(s.closed for s in live),
        "sampled": len(sampled),
        "sampled_in_order": sum(s.seqs == in_order for s in sampled),
        "latency_p50": percentile(latencies, 50) if latencies else None,
        "latency_p99": percentile(latencies, 99) if latencies else None,
        "latency_max": max(latencies, default=None),
    }


def run_client(
    client: Callable[[dict[str, Any]], Coroutine[Any, Any, None]], config: str, *, sockets: int | None = None
) -> None:
    """A client process's main: ``client(cfg)`` (``cfg``: the JSON ``config``) on uvloop (if installed),
    with room for its sockets: RLIMIT_NOFILE raised for ``sockets`` of them, by default
    ``cfg["clients"]`` if the config has it, else left as the process inherited it."""
    cfg = json.loads(config)
    if sockets is None:
        sockets = cfg.get("clients")
    if sockets is not None:
        raise_nofile(sockets)
    run_on_client_loop(client(cfg))


def run_on_client_loop(main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run(main)`` on :func:`client_loop_factory`'s loop (``asyncio.Runner`` is 3.11+)."""
    loop = client_loop_factory()()
    try:
        loop.run_until_complete(main)
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def migrate(settings: str, env: Mapping[str, str]) -> None:
    """Migrate the bench project's database (``settings`` and the ``env`` that names it)."""
    command = [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"]
    subprocess.run(command, cwd=REPO_ROOT, env=bench_env(settings, env), check=True, timeout=120)
