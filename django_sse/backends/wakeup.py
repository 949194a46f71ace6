"""How the processes that share a database wake each other's dispatcher when an event commits.

Without it, a process finds another's events only at its next poll (``POLL_INTERVAL``).
With it, every publish, once committed, tells every other process that has streams open,
and their dispatchers read the new events at once. The message is only a hint (the newest
id): the events themselves are always read from history, so a lost, late or forged
message costs latency at most, never an event, and the poll stays as the safety net.

- **SQLite**: processes sharing a database file share a machine. Each process with
  streams binds a Unix-domain datagram socket in a directory of its user's named after
  the database file's real path (in the system's temporary directory); a publish sends
  one datagram to every socket there. A socket left by a killed process refuses the
  datagram and is removed. No server, no thread, one system call per process per publish.
- **PostgreSQL** (psycopg 3): ``LISTEN``/``NOTIFY``, the database's own message bus,
  which reaches processes on any machine. Each process with streams holds one listening
  connection (not one per stream).
- Anything else (another database, psycopg 2, an in-memory SQLite database): wake-ups
  stay inside the process.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import secrets
import select
import socket
import stat
import tempfile
import threading
import time
from typing import Any, Protocol

from django.db import connections

__all__ = [
    "LISTENER_NAME",
    "NOTIFY_CHANNEL",
    "RECONNECT_DELAY",
    "LocalWakeup",
    "PostgresWakeup",
    "SocketWakeup",
    "Wakeup",
    "for_database",
    "for_sqlite",
    "listener_params",
    "polling_only",
    "socket_directory",
]

logger = logging.getLogger("django_sse")

#: The PostgreSQL ``LISTEN``/``NOTIFY`` channel of django-sse's wake-ups.
NOTIFY_CHANNEL = "django_sse"
#: The ``application_name`` of the listening connections.
LISTENER_NAME = "django-sse listener"
#: The longest path of a Unix-domain socket (``sun_path``, its terminating NUL excluded).
_MAX_SOCKET_PATH = 107
#: Seconds between attempts to listen again after the listening connection was lost.
RECONNECT_DELAY = 1.0


class Wakeup(Protocol):
    """What a dispatcher waits on, and what a publish calls once it has committed."""

    def wait(self, timeout: float | None) -> int | None:
        """Wait until woken or ``timeout``; the newest id another process announced meanwhile, or
        ``None`` when there is none to compare with (a timeout, a wake-up of this process's own,
        a reconnection): then the dispatcher must look."""

    def set(self) -> None:
        """Wake this process's dispatcher."""

    def announce(self, newest: int) -> None:
        """Tell the other processes that events up to id ``newest`` have committed."""

    def close(self) -> None:
        """Stop receiving (the dispatcher has ended)."""


class LocalWakeup:
    """Wake-ups inside this process only.

    A backend whose own listener hears from the other processes (a channel layer, a
    ``LISTEN`` connection) passes the ids it hears on with :meth:`heard`.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._look = False  # woken with nothing to compare
        self._heard: int | None = None

    def wait(self, timeout: float | None) -> int | None:
        with self._condition:
            if not self._look and self._heard is None:
                self._condition.wait(timeout)
            look, heard = self._look, self._heard
            self._look, self._heard = False, None
        return None if look else heard

    def set(self) -> None:
        with self._condition:
            self._look = True
            self._condition.notify()

    def heard(self, newest: int) -> None:
        """Another process announced that events up to id ``newest`` have committed."""
        with self._condition:
            self._heard = newest if self._heard is None else max(self._heard, newest)
            self._condition.notify()

    def announce(self, newest: int) -> None:
        pass

    def close(self) -> None:
        self.set()


def _drain(sock: socket.socket) -> int | None:
    """Read every waiting datagram; the highest id among them (``None``: one without an id)."""
    newest: int | None = 0
    while True:
        try:
            message = sock.recv(64)
        except (BlockingIOError, InterruptedError):
            return newest
        except OSError:
            return None
        if newest is not None:
            newest = max(newest, int(message)) if message.isdigit() else None


class SocketWakeup:
    """Wake-ups among the processes of one machine that share a SQLite file: one datagram socket
    per process (that has streams) in ``directory``."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None  # bound on the first wait(): only readers need one
        self._path = ""
        self._local = threading.Event()
        self._closed = False
        self._waiting = 0  # threads in select() on the socket, which only they may close then
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)

    def _bind(self) -> socket.socket | None:
        with self._lock:
            if self._sock is None and self.directory and not _own_directory(self.directory):
                self.directory = ""  # this process polls only; do not try again
            if self._sock is None and self.directory:
                path = os.path.join(self.directory, f"{os.getpid()}-{secrets.token_hex(4)}.sock")
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                try:
                    sock.bind(path)
                except OSError as error:
                    sock.close()
                    logger.warning(
                        "django-sse: cannot listen for other processes' events at %s: %s", path, error
                    )
                    self.directory = ""  # this process polls only; do not try again
                    return None
                sock.setblocking(False)
                self._sock, self._path = sock, path
            return self._sock

    def wait(self, timeout: float | None) -> int | None:
        sock = self._bind() if self.directory else self._sock
        if sock is None:
            self._local.wait(timeout)
            self._local.clear()
            return None
        if self._local.is_set():
            self._local.clear()
            return None
        with self._lock:
            if self._closed:
                return None  # close() has closed the socket
            self._waiting += 1
        try:
            readable, _, _ = select.select([sock], [], [], timeout)
            if self._local.is_set():
                self._local.clear()
                _drain(sock)
                return None
            return _drain(sock) if readable else None
        finally:
            with self._lock:
                self._waiting -= 1
                orphaned = self._closed and not self._waiting
            if orphaned:  # closed while this thread waited on it: closing it then could reuse its fd
                sock.close()

    def set(self) -> None:
        self._local.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):  # full: it is awake already
                self._sender.sendto(b"", self._path)

    def announce(self, newest: int) -> None:
        try:
            names = os.listdir(self.directory) if self.directory else []
        except OSError:
            return  # nobody has listened yet
        message = str(newest).encode()
        own = os.path.basename(self._path)
        for name in names:
            if name == own or not name.endswith(".sock"):
                continue
            path = os.path.join(self.directory, name)
            try:
                self._sender.sendto(message, path)
            except ConnectionRefusedError:
                # Nobody is bound to it: a process that ended without removing it.
                with contextlib.suppress(OSError):
                    os.unlink(path)
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.ENOENT):  # full: awake already; gone
                    logger.debug("django-sse: wake-up to %s failed: %s", path, error)

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
            self.directory = ""
            self._closed = True
            waiting = self._waiting
        self._local.set()
        if sock is not None:
            if waiting:  # wake the thread in select(): it closes the socket when select() returns
                with contextlib.suppress(OSError):  # full: it is awake already
                    self._sender.sendto(b"", self._path)
            with contextlib.suppress(OSError):
                os.unlink(self._path)
            if not waiting:
                sock.close()
        self._sender.close()  # a set() or announce() after this fails quietly, as a full socket does


def _own_directory(directory: str) -> bool:
    """Create ``directory`` (mode 0700) if needed; whether it is a real directory of this user's."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    try:
        info = os.lstat(directory)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        logger.warning(
            "django-sse: %s is not a private directory of this user's: processes find each other's "
            "events by polling only",
            directory,
        )
        return False
    return True


def socket_directory(database: str) -> str:
    """The directory of the wake-up sockets of the processes that share SQLite file ``database``."""
    digest = hashlib.sha256(os.path.realpath(database).encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"django-sse-{os.getuid()}-{digest}")


class PostgresWakeup:
    """Wake-ups through PostgreSQL's ``LISTEN``/``NOTIFY`` on database ``alias``."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self._listener: Any = None  # a psycopg 3 connection, opened on the first wait()
        self._retry_at = 0.0
        self._closed = False
        self._local_r, self._local_w = socket.socketpair()
        self._local_r.setblocking(False)
        self._local_w.setblocking(False)

    def _listen(self) -> Any:
        import psycopg

        listener = psycopg.connect(**listener_params(self.alias), autocommit=True)
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return listener

    def wait(self, timeout: float | None) -> int | None:
        if self._listener is None and not self._closed and time.monotonic() >= self._retry_at:
            try:
                self._listener = self._listen()
            except Exception as error:
                logger.warning("django-sse: cannot LISTEN on %r (%s); retrying", self.alias, error)
                self._retry_at = time.monotonic() + RECONNECT_DELAY
            else:
                return None  # events may have committed while nobody listened: look
        waiting = [self._local_r]
        if self._listener is not None:
            waiting.append(self._listener.fileno())
        if self._listener is None and not self._closed:  # wake up to listen again
            retry = max(0.0, self._retry_at - time.monotonic())
            timeout = retry if timeout is None else min(timeout, retry)
        readable, _, _ = select.select(waiting, [], [], timeout)
        if self._local_r in readable:
            _drain(self._local_r)
            return None
        if not readable or self._listener is None:
            return None
        try:
            payloads = [n.payload for n in self._listener.notifies(timeout=0)]
        except Exception as error:
            logger.warning(
                "django-sse: the LISTEN connection to %r was lost (%s); listening again", self.alias, error
            )
            self._drop()
            return None
        return max((int(p) for p in payloads if p.isdigit()), default=0) if payloads else None

    def _drop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                listener.close()

    def set(self) -> None:
        with contextlib.suppress(OSError):  # full: it is awake already
            self._local_w.send(b"\0")

    def announce(self, newest: int) -> None:
        with connections[self.alias].cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, str(newest)])

    def close(self) -> None:
        self._closed = True
        self.set()
        self._drop()


def listener_params(alias: str) -> dict[str, Any]:
    """The psycopg 3 connection parameters of a listening connection to database ``alias``."""
    params = connections[alias].get_connection_params()
    params.pop("cursor_factory", None)  # Django's own, for its cursors
    params["application_name"] = LISTENER_NAME  # so that pg_stat_activity tells it apart
    return params


def for_database(alias: str) -> Wakeup:
    """The wake-up for the processes that share database ``alias``."""
    connection = connections[alias]
    if connection.vendor == "sqlite":
        return for_sqlite(str(connection.settings_dict["NAME"] or ""))
    if connection.vendor == "postgresql" and _psycopg3():
        return PostgresWakeup(alias)
    return LocalWakeup()


def for_sqlite(name: str) -> Wakeup:
    """The wake-up for the processes that share SQLite database ``name`` (a file, or in memory)."""
    if not name or name == ":memory:" or "mode=memory" in name:
        return LocalWakeup()  # one process's own
    directory = socket_directory(name.removeprefix("file:").split("?", 1)[0])
    if len(os.path.join(directory, "4194304-01234567.sock")) > _MAX_SOCKET_PATH:
        logger.warning("django-sse: %s is too long a path for sockets: polling only", directory)
        return LocalWakeup()
    return SocketWakeup(directory)


def polling_only(alias: str) -> str:
    """Why the processes sharing database ``alias`` cannot wake each other where they could, or ``""``.

    Only the case a project can fix is reported: PostgreSQL through psycopg 2.
    """
    if connections[alias].vendor == "postgresql" and not _psycopg3():
        return "the wake-up through LISTEN/NOTIFY needs psycopg 3, and Django uses psycopg 2 here"
    return ""


def _psycopg3() -> bool:
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return bool(is_psycopg3)
