"""Helpers for your own tests: read the events an ``EventStreamView`` response sends."""

from __future__ import annotations

import time
from typing import Any

from . import bridge
from .event import Event, EventParser

__all__ = ["aread_events", "read_events"]


class _Reader:
    def __init__(self, count: int, timeout: float) -> None:
        self.parser, self.count, self.timeout = EventParser(), count, timeout
        self.events: list[Event] = []
        self.deadline = time.monotonic() + timeout

    def wanted(self) -> bool:
        return len(self.events) < self.count

    def time_left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def take(self, chunk: Any) -> None:
        if chunk is bridge.IDLE:
            raise TimeoutError(f"{len(self.events)} of {self.count} events arrived within {self.timeout} s")
        if chunk is bridge.END:
            raise AssertionError(f"the stream ended after {len(self.events)} of {self.count} events")
        self.events += self.parser.feed(chunk)


def read_events(response: Any, count: int, *, timeout: float = 5.0) -> list[Event]:
    """Read ``count`` events from a streaming response, as a browser would dispatch them.

    Works with responses from Django's test ``Client`` (and ``RequestFactory``
    views), whether ``stream()`` is sync or async. Raises ``TimeoutError``
    if ``count`` events have not arrived within ``timeout`` seconds, and
    closes the response (and so the stream) when done.
    """
    reader = _Reader(count, timeout)
    source = bridge.sync_source(iter(response))
    try:
        while reader.wanted():
            reader.take(source.get(reader.time_left()))
    finally:
        source.close()
        response.close()
    return reader.events[:count]


async def aread_events(response: Any, count: int, *, timeout: float = 5.0) -> list[Event]:
    """``read_events`` for async tests (Django's ``AsyncClient``)."""
    reader = _Reader(count, timeout)
    source = bridge.async_source(aiter(response))
    try:
        while reader.wanted():
            reader.take(await source.get(reader.time_left()))
    finally:
        await source.aclose()
    return reader.events[:count]
