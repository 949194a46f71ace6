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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

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


class ClientProcess:
    """``script`` run as a client process with ``cfg``, driven through its stdin and read through the
    JSON lines (see ``emit()``) on its stdout."""

    def __init__(self, script: str, cfg: dict[str, Any]) -> None:
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, script, CLIENT_FLAG, json.dumps(cfg)],
            cwd=REPO_ROOT,
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
            raise RuntimeError(f"client process: no {' or '.join(events)} within {timeout:g} s") from None
        if line is None:
            raise RuntimeError(f"client process exited ({self.proc.poll()}):\n{log_tail(self.stderr)}")
        message: dict[str, Any] = json.loads(line)
        if message["event"] not in events:
            raise RuntimeError(f"client process: expected {' or '.join(events)}, got {line}")
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
