from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres_server import Postgres, start_postgres
from tests.servers import Server, start


class Servers:
    """Starts each kind of server once per test session (per xdist worker), on first use."""

    def __init__(self) -> None:
        self._running: dict[str, Server] = {}

    def __getitem__(self, name: str) -> Server:
        if name not in self._running:
            self._running[name] = start(name)
        server = self._running[name]
        assert server.process.poll() is None, f"{name} died:\n{server.log()}"
        return server

    def stop_all(self) -> None:
        for server in self._running.values():
            server.stop()


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    running = Servers()
    try:
        yield running
    finally:
        running.stop_all()


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
