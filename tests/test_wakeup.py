"""The wake-ups between processes that share a database (django_sse/backends/wakeup.py).

Two ``SocketWakeup`` objects on one directory stand in for two processes here; the real
cross-process wake-up (server processes, SQLite and PostgreSQL) is in test_servers_workers.py.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from django_sse.backends import wakeup
from tests.sse_client import wait_for


def wait_in_thread(waker: wakeup.Wakeup, timeout: float) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def run() -> None:
        started = time.monotonic()
        result.append(waker.wait(timeout))
        result.append(time.monotonic() - started)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def bound(waker: wakeup.SocketWakeup) -> None:
    """Bind ``waker``'s socket as its dispatcher's first wait does."""
    assert waker.wait(0) is None


def test_announce_wakes_the_other_process_with_the_newest_id(tmp_path: Path) -> None:
    directory = str(tmp_path / "wake")
    reader, publisher = wakeup.SocketWakeup(directory), wakeup.SocketWakeup(directory)
    try:
        bound(reader)
        thread, result = wait_in_thread(reader, 30)
        publisher.announce(7)
        thread.join(10)
        assert result[0] == 7
        assert result[1] < 5  # woken, not timed out
        # Several announcements before the reader looks: one wake-up, the newest id.
        for newest in (8, 10, 9):
            publisher.announce(newest)
        assert reader.wait(5) == 10
    finally:
        reader.close()
        publisher.close()


def test_own_announcements_do_not_wake_own_dispatcher(tmp_path: Path) -> None:
    waker = wakeup.SocketWakeup(str(tmp_path / "wake"))
    try:
        bound(waker)
        waker.announce(3)
        started = time.monotonic()
        assert waker.wait(0.2) is None  # the timeout: nothing arrived
        assert time.monotonic() - started >= 0.2
    finally:
        waker.close()


def test_set_wakes_own_dispatcher_at_once(tmp_path: Path) -> None:
    waker = wakeup.SocketWakeup(str(tmp_path / "wake"))
    try:
        bound(waker)
        thread, result = wait_in_thread(waker, 30)
        waker.set()
        thread.join(10)
        assert result[0] is None  # "look": no id to compare with
        assert result[1] < 5
        waker.set()  # set before the wait: the wait returns at once
        assert waker.wait(30) is None
    finally:
        waker.close()


def test_a_socket_left_by_a_dead_process_is_removed(tmp_path: Path) -> None:
    directory = tmp_path / "wake"
    publisher = wakeup.SocketWakeup(str(directory))
    reader = wakeup.SocketWakeup(str(directory))
    bound(reader)
    stale = directory / "999999-deadbeef.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(stale))
    dead.close()  # as a killed process leaves it: the file stays, nobody reads
    try:
        publisher.announce(1)
        assert not stale.exists()
        assert reader.wait(5) == 1  # the live one still got it
    finally:
        reader.close()
        publisher.close()


def test_close_removes_the_socket(tmp_path: Path) -> None:
    directory = tmp_path / "wake"
    waker = wakeup.SocketWakeup(str(directory))
    bound(waker)
    assert len(os.listdir(directory)) == 1
    waker.close()
    assert os.listdir(directory) == []


def socket_fds() -> set[str]:
    """This process's open sockets, as /proc shows them."""
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                fds.add(fd)
        except FileNotFoundError:  # the fd of listdir itself, closed meanwhile
            pass
    return fds


def test_close_releases_every_socket_and_a_later_wakeup_is_harmless(tmp_path: Path) -> None:
    before = socket_fds()
    waker = wakeup.SocketWakeup(str(tmp_path / "wake"))
    bound(waker)
    assert len(socket_fds() - before) == 2  # its own, and the one it sends from
    waker.close()
    assert socket_fds() - before == set()
    waker.set()  # a publish that commits after its backend was replaced
    waker.announce(5)


def test_a_directory_not_private_is_not_used(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "wake"
    directory.mkdir(mode=0o777)
    directory.chmod(0o777)  # others could read and forge: polling only
    waker = wakeup.SocketWakeup(str(directory))
    with caplog.at_level(logging.WARNING, logger="django_sse"):
        started = time.monotonic()
        assert waker.wait(0.1) is None
        assert waker.wait(0.1) is None
    assert time.monotonic() - started >= 0.2
    assert os.listdir(directory) == []
    assert len([r for r in caplog.records if "not a private directory" in r.getMessage()]) == 1
    waker.close()


def test_the_directory_is_named_after_the_database_file(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite3"
    link = tmp_path / "link.sqlite3"
    link.symlink_to(database)
    assert wakeup.socket_directory(str(database)) == wakeup.socket_directory(str(link))
    assert wakeup.socket_directory(str(database)) != wakeup.socket_directory(str(tmp_path / "other.sqlite3"))
    assert f"django-sse-{os.getuid()}-" in wakeup.socket_directory(str(database))


def test_local_wakeup() -> None:
    waker = wakeup.LocalWakeup()
    waker.announce(5)  # nobody else to tell
    waker.set()
    assert waker.wait(5) is None
    started = time.monotonic()
    assert waker.wait(0.1) is None
    assert time.monotonic() - started >= 0.1


@pytest.mark.django_db
def test_for_database_on_the_test_database() -> None:
    from django.db import connection

    waker = wakeup.for_database("default")
    assert isinstance(waker, wakeup.SocketWakeup)
    assert waker.directory == wakeup.socket_directory(connection.settings_dict["NAME"])
    waker.close()


def test_in_memory_databases_wake_only_their_process(tmp_path: Path) -> None:
    for name in (":memory:", "file:shared?mode=memory&cache=shared", ""):
        assert isinstance(wakeup.for_sqlite(name), wakeup.LocalWakeup), name
    uri = wakeup.for_sqlite(f"file:{tmp_path / 'db.sqlite3'}?cache=shared")
    assert isinstance(uri, wakeup.SocketWakeup)
    assert uri.directory == wakeup.socket_directory(str(tmp_path / "db.sqlite3"))
    uri.close()


def test_close_while_the_dispatcher_waits_wakes_it_and_then_releases_the_socket(tmp_path: Path) -> None:
    before = socket_fds()
    waker = wakeup.SocketWakeup(str(tmp_path / "wake"))
    bound(waker)
    thread, result = wait_in_thread(waker, 30)  # waits in select() on its socket
    assert wait_for(lambda: waker._waiting == 1, timeout=5, interval=0.001)
    waker.close()
    thread.join(5)
    assert not thread.is_alive() and result[0] is None and result[1] < 5  # woken, not failed
    assert socket_fds() - before == set()
    assert os.listdir(tmp_path / "wake") == []
