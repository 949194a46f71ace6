"""Real server processes for the tests: started on free 127.0.0.1 ports, stopped by their own PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


_database: Path | None = None


def environment(settings: str = "tests.project.settings") -> dict[str, str]:
    """The environment of every process a test starts: the same migrated SQLite file for all of
    them (one per test process), so that history and ids are shared as on one machine."""
    global _database
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings, "PYTHONUNBUFFERED": "1"}
    if _database is None:
        path = Path(tempfile.mkdtemp(prefix="sse-db-")) / "db.sqlite3"
        command = [sys.executable, "manage.py", "migrate", "--no-input", "--verbosity", "0"]
        migrate_env = {**env, "SSE_TEST_DB": str(path), "DJANGO_SETTINGS_MODULE": "tests.project.settings"}
        subprocess.run(command, cwd=ROOT, env=migrate_env, check=True, timeout=120)
        _database = path
    env["SSE_TEST_DB"] = str(_database)
    return env


def manage(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a management command of the test project in a process of its own."""
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment(), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def start_publisher(channels: str, count: int, interval: float) -> subprocess.Popen[str]:
    """Start tests/publisher.py; its stdout lists "<id> <channel> <seq>" per event published."""
    command = [sys.executable, "-m", "tests.publisher", channels, str(count), str(interval)]
    return subprocess.Popen(command, cwd=ROOT, env=environment(), stdout=subprocess.PIPE, text=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _commands(port: int) -> dict[str, list[str]]:
    bind = f"127.0.0.1:{port}"
    daphne = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port)]
    gunicorn = [str(BIN / "gunicorn"), "-b", bind, "--workers", "1", "tests.project.wsgi:application"]
    return {
        "daphne": [*daphne, "tests.project.asgi:application"],
        # daphne is in INSTALLED_APPS, so runserver is daphne's ASGI runserver.
        "daphne-demo": [*daphne, "example_project.asgi:application"],
        "runserver": [sys.executable, "manage.py", "runserver", bind, "--noreload", "--skip-checks"],
        "uvicorn": [
            sys.executable, "-m", "uvicorn", "tests.project.asgi:application",
            "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off", "--no-access-log",
        ],
        "channels": [*daphne, "tests.project.channels_asgi:application"],
        "gunicorn-sync": [*gunicorn, "--worker-class", "sync"],
        "gunicorn-gthread": [*gunicorn, "--worker-class", "gthread", "--threads", "16"],
    }  # fmt: skip


ASGI_SERVERS = ["daphne", "runserver", "uvicorn", "channels"]
WSGI_SERVERS = ["gunicorn-sync", "gunicorn-gthread"]
ALL_SERVERS = ASGI_SERVERS + WSGI_SERVERS


@dataclass
class Server:
    """One running server process."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    base_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.base_url = f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stats(self) -> dict:
        return httpx.get(self.url("/stats/"), timeout=10).json()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(
    name: str,
    *,
    extra_args: tuple[str, ...] = (),
    settings: str = "tests.project.settings",
    ready_path: str = "/ping/",
    ready_timeout: float = 30.0,
    port: int | None = None,
) -> Server:
    """Start server ``name`` and wait (bounded) until ``ready_path`` answers."""
    port = port or free_port()
    log_fd, log_name = tempfile.mkstemp(prefix=f"sse-{name}-", suffix=".log")
    env = environment(settings)
    command = _commands(port)[name] + list(extra_args)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_fd, stderr=subprocess.STDOUT)
    os.close(log_fd)
    server = Server(name, port, process, Path(log_name))
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.url(ready_path), timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name} did not answer within {ready_timeout} s:\n{server.log()}")
