from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres_server import Postgres, start_postgres
from tests.servers import Server, Started


@pytest.fixture(scope="session")
def started() -> Iterator[Started]:
    """The session's shared processes (per xdist worker), each started on first use
    (tests/servers.py ``Started``); all stopped, by their PIDs, when the session ends."""
    running = Started()
    try:
        yield running
    finally:
        running.stop_all()


class Servers:
    """``servers[name]``: server ``name`` with its usual settings, from the session's ``started``."""

    def __init__(self, started: Started) -> None:
        self._started = started

    def __getitem__(self, name: str) -> Server:
        return self._started.server(name)


@pytest.fixture(scope="session")
def servers(started: Started) -> Servers:
    return Servers(started)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # With --dist loadgroup, all tests of one server run on one xdist worker,
    # so each server process is started once; different servers run in parallel.
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "server_name" in callspec.params:
            item.add_marker(pytest.mark.xdist_group(callspec.params["server_name"]))


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    """A PostgreSQL server of the module's own (tests/postgres_server.py), stopped by its PID."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _fresh_backend() -> Iterator[None]:
    # Each test gets its own fan-out state (dispatcher position, counters).
    from django_sse.backends import reset_backend

    yield
    reset_backend()
