"""A real PostgreSQL server for the tests: a fresh data directory, a free 127.0.0.1 port, stopped by its PID.

PostgreSQL refuses to run as root, and the tests run as root (as CI does): then initdb and the
postmaster run as the ``postgres`` OS user (Debian's package creates it), owner of the temp directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from django_sse.backends.wakeup import LISTENER_NAME
from tests import servers
from tests.servers import ROOT, ProcessHandle, free_port

SETTINGS = "tests.project.settings_postgres"
#: Settings for speed, not durability: a test server's data lives as long as the test run.
SERVER_OPTIONS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "logging_collector": "off",
}
READY_TIMEOUT = 30.0


def postgres_bin() -> Path:
    """The bin directory of the newest PostgreSQL installed under /usr/lib/postgresql (Debian's layout)."""

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", Path(path).parent.parent.name))

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=version)
    if not found:
        raise RuntimeError("PostgreSQL is not installed: .ci/setup installs Debian's postgresql")
    return Path(found[-1]).parent


def _run_as() -> dict[str, Any]:
    """Popen arguments that drop root to the postgres user (nothing when not root)."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("running as root, but there is no postgres user to run PostgreSQL as") from None
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


class Postgres(ProcessHandle):
    """A running postmaster. ``stop()`` is a fast shutdown (SIGINT: SIGTERM, a smart shutdown, would
    wait for every client to leave), then SIGKILL after 10 s, and removes the temp directory."""

    stop_signal = signal.SIGINT

    def __init__(self, port: int, process: subprocess.Popen[bytes], directory: Path) -> None:
        super().__init__("postgres", port, process, directory / "postgres.log")
        #: The temp directory: data/ (the cluster), the Unix socket, and postgres.log.
        self.directory = directory

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", *, timeout: int = 5) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.dsn(dbname), autocommit=True, connect_timeout=timeout)

    def query(self, query: str, dbname: str = "postgres", *, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement (autocommit) on a connection of its own; its rows, [] if it returns none."""
        with self.connect(dbname) as conn, conn.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchall() if cursor.description is not None else []

    def create_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def client_connections(self, dbname: str, *, listeners: bool = True) -> int:
        """Client connections to ``dbname`` now, not counting the one that asks; without django-sse's
        listening connections (one per process with streams) unless ``listeners``."""
        rows = self.query(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND datname = %s AND pid <> pg_backend_pid()"
            " AND (%s OR application_name <> %s)",
            params=(dbname, listeners, LISTENER_NAME),
        )
        return int(rows[0][0])

    def listeners(self, dbname: str) -> int:
        """django-sse's listening connections to ``dbname`` (``LISTEN django_sse``)."""
        rows = self.query(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            params=(dbname, LISTENER_NAME),
        )
        return int(rows[0][0])

    def shutdown(self) -> None:
        """Stop the postmaster by its PID; the data directory stays."""
        super().stop()

    def stop(self) -> None:
        """Shut down and remove the temp directory (a cluster is some 40 MB)."""
        self.shutdown()
        shutil.rmtree(self.directory, ignore_errors=True)

    def restart(self) -> None:
        """Shut down and start again, on the same port and data directory."""
        self.shutdown()
        self.process = _launch(self.directory, self.port)
        _wait_ready(self)


def _launch(directory: Path, port: int) -> subprocess.Popen[bytes]:
    command = [str(postgres_bin() / "postgres"), "-D", str(directory / "data"), "-p", str(port)]
    command += ["-c", f"unix_socket_directories={directory}"]
    for name, value in SERVER_OPTIONS.items():
        command += ["-c", f"{name}={value}"]
    with open(directory / "postgres.log", "ab") as log:
        return subprocess.Popen(
            command, cwd=directory, env=_server_env(directory), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, **_run_as(),
        )  # fmt: skip


def _server_env(directory: Path) -> dict[str, str]:
    # Not root's HOME (unreadable to postgres); C locale, whatever the machine's LANG.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(directory), "LC_ALL": "C"}


def _wait_ready(pg: Postgres, timeout: float = READY_TIMEOUT) -> None:
    """Wait (bounded) until a connection succeeds; on failure stop it and raise with the server log."""

    def connects() -> bool:
        with pg.connect(timeout=2) as conn:
            conn.execute("SELECT 1")
        return True

    pg.wait_ready(connects, timeout=timeout, interval=0.05, errors=(psycopg.OperationalError,))


def start_postgres(port: int | None = None) -> Postgres:
    """initdb a fresh cluster in a temp directory and start postgres on ``port`` (default: a free one)."""
    bin_dir = postgres_bin()
    port = port or free_port()
    directory = Path(tempfile.mkdtemp(prefix="sse-postgres-"))
    run_as = _run_as()
    if run_as:
        os.chown(directory, run_as["user"], run_as["group"])
    initdb = [
        str(bin_dir / "initdb"), "-D", str(directory / "data"), "--username=postgres", "--auth=trust",
        "--encoding=UTF8", "--locale=C", "--no-sync",
    ]  # fmt: skip
    result = subprocess.run(
        initdb, cwd=directory, env=_server_env(directory), capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL, **run_as,
    )  # fmt: skip
    if result.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(f"initdb failed with {result.returncode}:\n{result.stdout}\n{result.stderr}")
    pg = Postgres(port, _launch(directory, port), directory)
    try:
        _wait_ready(pg)
    except BaseException:
        pg.stop()
        raise
    return pg


def environment(pg: Postgres, dbname: str, *, pool: bool = False) -> dict[str, str]:
    """The environment of a process of the test project on database ``dbname`` of ``pg``
    (tests/project/settings_postgres.py), with Django's psycopg connection pool if ``pool``."""
    env = servers.environment(SETTINGS)
    env.update(SSE_PG_PORT=str(pg.port), SSE_PG_NAME=dbname, SSE_PG_POOL="1" if pool else "0")
    return env


def migrate(pg: Postgres, dbname: str) -> None:
    """Create database ``dbname`` and migrate it, in a process of its own."""
    pg.create_database(dbname)
    command = [sys.executable, "manage.py", "migrate", "--no-input", "--verbosity", "0"]
    result = subprocess.run(
        command, cwd=ROOT, env=environment(pg, dbname), capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"migrate into {dbname} failed:\n{result.stdout}\n{result.stderr}")
