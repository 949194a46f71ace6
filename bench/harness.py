"""What the benchmarks share: start a server on a free 127.0.0.1 port, stop it by its PID, read /proc."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, NamedTuple

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
APP = "benchproject.asgi:application"

SERVERS: dict[str, Callable[[int], list[str]]] = {
    "daphne": lambda port: [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), APP],
    "uvicorn": lambda port: [
        *(sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)),
        *("--log-level", "warning", "--no-access-log", APP),
    ],
}
READY_ATTEMPTS = 200  # x 0.1 s
STOP_TIMEOUT = 5.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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
    server: str, settings: str, *, args: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> Iterator[Server]:
    """Run ``server`` (with extra command-line ``args``) on ``settings`` on a free 127.0.0.1 port.

    Yields once ``/ping/`` answers 200; stops the server by its PID on the way out.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        command = [*SERVERS[server](port), *args]
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
