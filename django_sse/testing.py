"""Helpers for your own tests: read the events an ``EventStreamView`` response sends, and act once
its stream has subscribed."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.core.signals import request_finished
from django.db import close_old_connections, connections

from .delivery import bridge
from .event import Event, EventParser, encode
from .response import EventStreamResponse, raise_failures
from .stats import get_stats

__all__ = ["aread_events", "read_events", "when_subscribed"]

T = TypeVar("T")

#: Seconds between two looks at the subscription count in :func:`when_subscribed`.
_LOOK_EVERY = 0.01


class _Reader:
    def __init__(self, count: int, timeout: float) -> None:
        self.parser, self.count, self.timeout = EventParser(), count, timeout
        self.events: list[Event] = []
        self.encoder: Callable[[Any], bytes] = encode
        self.deadline = time.monotonic() + timeout

    def wanted(self) -> bool:
        return len(self.events) < self.count

    def time_left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def feed(self, item: Any) -> None:
        if item is bridge.IDLE:
            raise TimeoutError(f"{len(self.events)} of {self.count} events arrived within {self.timeout} s")
        if item is bridge.END:
            raise AssertionError(f"the stream ended after {len(self.events)} of {self.count} events")
        self.events += self.parser.feed(self.encoder(item))


def _reader(response: Any, count: int, timeout: float) -> tuple[_Reader, Any]:
    if not isinstance(response, EventStreamResponse):
        raise TypeError(f"Expected an EventStreamResponse, got {type(response).__name__}.")
    # The response's own events, not its chunks: they can be closed at once from here.
    parts = response.parts()
    reader = _Reader(count, timeout)
    reader.encoder = parts.encoder
    reader.events += reader.parser.feed(parts.preamble)
    return reader, parts.events


def _close(response: Any) -> None:
    # Like Django's test client: closing the response must not close the test's database
    # connection (request_finished would), which may be inside the test's transaction.
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def read_events(response: Any, count: int, *, timeout: float = 5.0) -> list[Event]:
    """Read ``count`` events from a streaming response, as a browser would dispatch them.

    Works with :class:`~django_sse.EventStreamResponse` responses from
    Django's test ``Client`` (and ``RequestFactory`` views), whether
    ``stream()`` is sync or async, with or without channels. Raises ``TimeoutError``
    if ``count`` events have not arrived within ``timeout`` seconds, and what
    the stream raised if it failed (a server logs it and ends the response);
    closes the response (and so the stream) when done.
    """
    reader, events = _reader(response, count, timeout)
    raising = raise_failures.set(True)  # before the source copies the context onto its thread
    try:
        source = bridge.sync_source(events)
        try:
            while reader.wanted():
                reader.feed(source.get(reader.time_left()))
        finally:
            source.close()
            _close(response)
    finally:
        raise_failures.reset(raising)
    return reader.events[:count]


async def aread_events(response: Any, count: int, *, timeout: float = 5.0) -> list[Event]:
    """``read_events`` for async tests (Django's ``AsyncClient``)."""
    reader, events = _reader(response, count, timeout)
    raising = raise_failures.set(True)
    try:
        source = bridge.async_source(events)
        try:
            while reader.wanted():
                reader.feed(await source.get(reader.time_left()))
        finally:
            await source.aclose()
            await sync_to_async(_close)(response)
    finally:
        raise_failures.reset(raising)
    return reader.events[:count]


def when_subscribed(
    action: Callable[[], T], *, streams: int = 1, timeout: float = 10.0
) -> concurrent.futures.Future[T]:
    """Call ``action`` on a thread of its own once ``streams`` streams of this process are
    subscribed to their channels; its result (or what it raised) is the returned future's.

    A channel stream subscribes when it is first read, not when its view returns: start this,
    then read the response, e.g. ``when_subscribed(lambda: publish("chat", "hi"))`` before
    ``read_events(response, 1)``. ``streams`` counts every subscribed stream of the process
    (:attr:`django_sse.stats.Stats.subscribed`). If they are not all subscribed within
    ``timeout`` seconds, ``action`` is not called and the future raises ``TimeoutError``.
    The thread's database connections are closed when it ends.
    """
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        deadline = time.monotonic() + timeout
        try:
            while (subscribed := get_stats().subscribed) < streams:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{subscribed} of {streams} streams subscribed within {timeout} s")
                time.sleep(_LOOK_EVERY)
            future.set_result(action())
        except BaseException as exc:
            future.set_exception(exc)
        finally:
            connections.close_all()

    threading.Thread(target=run, name="django_sse.testing.when_subscribed", daemon=True).start()
    return future
