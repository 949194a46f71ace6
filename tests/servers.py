"""Real server processes for the tests: started on free 127.0.0.1 ports, stopped by their own PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TypeVar

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


def start_publisher(
    channels: str, count: int, interval: float, *, hold: float = 0.0, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start tests/publisher.py; its stdout lists "<id> <channel> <seq>" per event published.

    ``hold``: seconds each publish's transaction stays open after it (see tests/publisher.py).
    """
    command = [sys.executable, "-m", "tests.publisher", channels, str(count), str(interval), str(hold)]
    return subprocess.Popen(command, cwd=ROOT, env=env or environment(), stdout=subprocess.PIPE, text=True)


def publish_all(
    channels: str, count: int, interval: float, *, env: dict[str, str] | None = None
) -> list[int]:
    """Run tests/publisher.py to its end (stopped by its PID if it overruns); the ids it published."""
    publisher = start_publisher(channels, count, interval, env=env)
    try:
        out, _ = publisher.communicate(timeout=60)
    finally:
        stop_process(publisher)
    assert publisher.returncode == 0, f"the publisher exited with {publisher.returncode}"
    return [int(line.split()[0]) for line in out.splitlines()]


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop a process the tests started, by its PID: ``sig`` (SIGTERM), then SIGKILL after 10 s."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:  # read by the test already, or never: nothing more comes
            pipe.close()


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
        # django_sse.asgi: event streams sent straight to the server, not through Django's send loop.
        "daphne-sse": [*daphne, "tests.project.asgi_sse:application"],
        "uvicorn-sse": [
            sys.executable, "-m", "uvicorn", "tests.project.asgi_sse:application",
            "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off", "--no-access-log",
        ],
        "gunicorn-sync": [*gunicorn, "--worker-class", "sync"],
        "gunicorn-gthread": [*gunicorn, "--worker-class", "gthread", "--threads", "16"],
        # uWSGI from PyPI's pyuwsgi wheel: it runs in this venv's interpreter (see test_wsgi_servers.py).
        # --die-on-term: uWSGI 2.0 reloads on SIGTERM otherwise; --threads also enables Python threads.
        "uwsgi": [
            str(BIN / "uwsgi"), "--http-socket", bind, "--module", "tests.project.wsgi:application",
            "--master", "--processes", "1", "--threads", "16", "--die-on-term", "--need-app",
            "--disable-logging",
        ],
        # The application is appended after extra_args (_LAST_ARGS): waitress-serve wants it last.
        "waitress": [str(BIN / "waitress-serve"), f"--listen={bind}", "--threads=16"],
        # Settings without daphne: runserver is Django's own WSGI server (wsgiref).
        "runserver-wsgi": [sys.executable, "manage.py", "runserver", bind, "--noreload", "--skip-checks"],
    }  # fmt: skip


#: Settings modules of the kinds that do not run the test project's usual settings.
SERVER_SETTINGS = {"runserver-wsgi": "tests.project.settings_nodaphne"}
#: Arguments that go after start()'s extra_args.
_LAST_ARGS = {"waitress": ["tests.project.wsgi:application"]}


ASGI_SERVERS = ["daphne", "runserver", "uvicorn", "channels", "daphne-sse", "uvicorn-sse"]
WSGI_SERVERS = ["gunicorn-sync", "gunicorn-gthread"]
ALL_SERVERS = ASGI_SERVERS + WSGI_SERVERS
#: WSGI servers tested in test_wsgi_servers.py (and behind nginx: gunicorn-gthread).
MORE_WSGI_SERVERS = ["uwsgi", "waitress", "runserver-wsgi"]
#: Every server the core delivery and disconnect tests run on.
EVERY_SERVER = ALL_SERVERS + MORE_WSGI_SERVERS


class ProcessHandle:
    """A process a test started, on a port of 127.0.0.1: its Popen and its log, stopped by its PID.

    The base of every handle (servers, nginx, redis-server, PostgreSQL): ``name`` says what it is in
    messages; ``stop_signal`` is what ``stop()`` sends first (then SIGKILL, see stop_process).
    """

    stop_signal: int = signal.SIGTERM

    def __init__(self, name: str, port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.port = port
        self.process = process
        self.log_path = log_path

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} port={self.port} pid={self.process.pid}>"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def failure_output(self) -> str:
        """What to show when it fails to start: its log."""
        return self.log()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        stop_process(self.process, self.stop_signal)

    def wait_ready(
        self,
        ready: Callable[[], bool],
        *,
        timeout: float,
        interval: float = 0.1,
        errors: tuple[type[Exception], ...] = (OSError, httpx.HTTPError),
    ) -> None:
        """Wait (bounded) until ``ready()`` is true (``errors`` it raises mean "not yet"); if the process
        exits first, raise; if ``timeout`` passes, stop it and raise; with failure_output()."""
        deadline = time.monotonic() + timeout
        error: Exception | None = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.failure_output()}"
                )
            try:
                if ready():
                    return
            except errors as exc:
                error = exc
            time.sleep(interval)
        stop_process(
            self.process, self.stop_signal
        )  # the process only: a subclass's stop() may clean up more
        reason = f" ({error})" if error is not None else ""
        raise RuntimeError(f"{self.name} did not answer within {timeout} s{reason}:\n{self.failure_output()}")


class HttpHandle(ProcessHandle):
    """A process that answers HTTP on its port."""

    def __init__(self, name: str, port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
        super().__init__(name, port, process, log_path)
        self.base_url = f"http://127.0.0.1:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def wait_answering(self, path: str, timeout: float) -> None:
        """Wait (bounded) until GET ``path`` answers 200."""
        self.wait_ready(lambda: httpx.get(self.url(path), timeout=1).status_code == 200, timeout=timeout)


H = TypeVar("H", bound=ProcessHandle)


class Started:
    """Processes started on first use and kept running for the session (per xdist worker): the
    tests' one registry of shared processes (tests/conftest.py's ``started`` fixture stops them all).

    ``shared(key, start)`` returns the running handle for ``key``, calling ``start()`` the first time;
    a handle whose process has died fails the test that asks for it. Keys are tuples whose first
    item says what kind of process: ``("server", name, settings)``, ``("nginx", upstream, config)``.
    """

    def __init__(self) -> None:
        self._running: dict[Hashable, ProcessHandle] = {}

    def shared(self, key: Hashable, start: Callable[[], H]) -> H:
        handle = self._running.get(key)
        if handle is None:
            handle = self._running[key] = start()
        assert handle.alive(), f"{handle.name} died:\n{handle.log()}"
        return handle  # type: ignore[return-value]  # what start() returned for this key

    def server(self, name: str, settings: str | None = None) -> Server:
        """Server ``name`` (with ``settings``, default its usual ones), started on first use."""
        return self.shared(("server", name, settings), lambda: start(name, settings=settings))

    def stop_all(self) -> None:
        """Stop every process, the newest first (a proxy before its upstream)."""
        for handle in reversed(list(self._running.values())):
            handle.stop()
        self._running.clear()


class Server(HttpHandle):
    """One running server process (``name`` is its kind, a key of _commands())."""

    def stats(self) -> dict:
        return httpx.get(self.url("/stats/"), timeout=10).json()


def start(
    name: str,
    *,
    extra_args: tuple[str, ...] = (),
    settings: str | None = None,
    ready_path: str = "/ping/",
    ready_timeout: float = 30.0,
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    """Start server ``name`` and wait (bounded) until ``ready_path`` answers.

    ``env`` is the server's whole environment (e.g. tests.postgres_server.environment()); without
    it, environment() of ``settings`` or the server's usual settings."""
    port = port or free_port()
    log_fd, log_name = tempfile.mkstemp(prefix=f"sse-{name}-", suffix=".log")
    if env is None:
        env = environment(settings or SERVER_SETTINGS.get(name, "tests.project.settings"))
    command = _commands(port)[name] + list(extra_args) + _LAST_ARGS.get(name, [])
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_fd, stderr=subprocess.STDOUT)
    os.close(log_fd)
    server = Server(name, port, process, Path(log_name))
    server.wait_answering(ready_path, ready_timeout)
    return server


# nginx in front of a server: a real nginx (Debian's package), with a generated configuration.

#: What holds event streams back, on purpose: nginx's defaults (proxy_buffering on; before 1.29.7 HTTP/1.0
#: to the upstream), compression of event streams, and a short read timeout.
NGINX_HOSTILE = """\
gzip on;
gzip_types text/event-stream application/json;
proxy_read_timeout {read_timeout};
"""

NGINX_CONF = """\
worker_processes 1;
error_log {dir}/error.log info;
pid {dir}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
{hostile}
{http}
    server {{
        listen 127.0.0.1:{port};
{server}
    }}
}}
"""


def nginx_binary() -> str | None:
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


class Nginx(HttpHandle):
    """A running nginx: its master process, started with ``daemon off``, stopped by its PID (SIGTERM
    is nginx's fast shutdown; a graceful SIGQUIT would wait for open streams). log() is its error log."""

    def __init__(self, port: int, process: subprocess.Popen[bytes], directory: Path) -> None:
        super().__init__("nginx", port, process, directory / "error.log")
        #: The configuration, pid file, temp paths and logs.
        self.directory = directory

    def failure_output(self) -> str:
        # nginx writes to stderr.log before its error_log is open.
        parts = [self.directory / "stderr.log", self.log_path, self.directory / "nginx.conf"]
        return "\n".join(path.read_text(errors="replace") for path in parts if path.exists())


def start_nginx(
    upstream_port: int,
    *,
    server: str | None = None,
    http: str = "",
    hostile: bool = True,
    read_timeout: str = "2s",
    ready_path: str = "/ping/",
) -> Nginx:
    """Start nginx on a free port in front of ``127.0.0.1:upstream_port``.

    ``server`` is the body of the ``server`` block (default: one ``location /`` that proxies to the
    upstream with nginx's defaults); ``http`` is added to the ``http`` block; ``hostile`` adds
    ``NGINX_HOSTILE``. The configuration, pid file and logs are in a temporary directory.
    """
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed: apt-get install -y nginx (.ci/setup does)")
    directory = Path(tempfile.mkdtemp(prefix="sse-nginx-"))
    directory.chmod(0o755)  # run as root, nginx's workers run as nobody and use the temp paths in here
    port = free_port()
    if server is None:
        server = f"location / {{ proxy_pass http://127.0.0.1:{upstream_port}; }}"
    conf = NGINX_CONF.format(
        dir=directory,
        port=port,
        hostile=NGINX_HOSTILE.format(read_timeout=read_timeout) if hostile else "",
        http=http,
        server=server,
    )
    (directory / "nginx.conf").write_text(conf)
    command = [binary, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-g", "daemon off;"]
    log = open(directory / "stderr.log", "wb")  # noqa: SIM115  (nginx writes here before its error_log opens)
    with log:
        process = subprocess.Popen(command, cwd=directory, stdout=log, stderr=subprocess.STDOUT)
    proxy = Nginx(port, process, directory)
    proxy.wait_answering(ready_path, 15)
    return proxy
