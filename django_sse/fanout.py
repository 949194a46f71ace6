"""Local fan-out: the streams of this process that are subscribed to channels.

A publish is handed over once per event loop, not once per client: each
stream's event loop (the server's, or a per-stream loop under WSGI) gets one
callback per batch, which appends to each subscriber's bounded buffer there.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import threading
from collections.abc import Callable, Iterable, Sequence

from .event import Event

__all__ = ["Closed", "Hub", "SlowClient", "Subscription"]

logger = logging.getLogger("django_sse")

#: An event with its id as an int (None without one), converted once per event rather than per stream.
_Entry = tuple[int | None, Event]


class SlowClient(Exception):
    """The client fell further behind than its buffer allows; its stream ends so that it can replay."""


class Closed(Exception):
    """The subscription was closed from outside (the server is shutting down)."""


class Subscription:
    """One stream's view of its channels: a bounded buffer of events, filled from any thread."""

    def __init__(
        self, hub: Hub, channels: Sequence[str], buffer: int, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.hub = hub
        self.channels = tuple(channels)
        self.loop = loop
        #: Called on ``loop`` when events arrive or the stream must end; set by the stream's reader.
        self.on_ready: Callable[[], None] | None = None
        self._buffer: collections.deque[_Entry] = collections.deque()
        self._limit = buffer
        self._failure: Exception | None = None

    def take(self) -> _Entry | None:
        """The next event with its id as an int, or ``None`` if none is waiting.

        Raises ``SlowClient`` or ``Closed`` when the stream must end.
        """
        if self._buffer:
            return self._buffer.popleft()
        if self._failure is not None:
            raise self._failure
        return None

    async def get(self) -> Event:
        """The next event; raises ``SlowClient`` or ``Closed`` when the stream must end."""
        while (entry := self.take()) is None:
            ready: asyncio.Future[None] = self.loop.create_future()
            self.on_ready = functools.partial(_resolve, ready)
            await ready
        return entry[1]

    def close(self) -> None:
        """Stop receiving events (idempotent)."""
        self.hub.remove(self)

    # Called on self.loop only.

    def _put(self, entries: Iterable[_Entry]) -> None:
        if self._failure is not None:
            return
        self._buffer.extend(entries)
        if len(self._buffer) > self._limit:
            self._buffer.clear()  # free the memory now; the client replays from history
            self._fail(SlowClient(f"more than {self._limit} events waiting"))
            self.hub.count_slow_client(self)
        elif self.on_ready is not None:
            self.on_ready()

    def _fail(self, failure: Exception) -> None:
        if self._failure is None:
            self._failure = failure
        if self.on_ready is not None:
            self.on_ready()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Hub:
    """Subscriptions by channel, for one process; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_channel: dict[str, set[Subscription]] = collections.defaultdict(set)
        self._all: set[Subscription] = set()  # so that counting them is no work
        self.slow_clients = 0

    def add(self, subscription: Subscription) -> None:
        """Start delivering the subscription's channels to it."""
        with self._lock:
            self._all.add(subscription)
            for channel in subscription.channels:
                self._by_channel[channel].add(subscription)

    def remove(self, subscription: Subscription) -> None:
        """Stop delivering to the subscription (idempotent)."""
        with self._lock:
            self._all.discard(subscription)
            for channel in subscription.channels:
                subscribers = self._by_channel.get(channel)
                if subscribers is not None:
                    subscribers.discard(subscription)
                    if not subscribers:
                        del self._by_channel[channel]

    def channels(self) -> set[str]:
        """The channels with at least one subscriber here."""
        with self._lock:
            return set(self._by_channel)

    def __len__(self) -> int:
        return len(self._all)

    def deliver(self, batch: Sequence[tuple[str, Event]]) -> None:
        """Hand ``(channel, event)`` pairs, in order, to every subscriber; from any thread."""
        entries = [
            (channel, (None if event.id is None else int(event.id), event)) for channel, event in batch
        ]
        by_channel: dict[str, list[_Entry]] = {}
        for channel, entry in entries:
            by_channel.setdefault(channel, []).append(entry)
        per_loop: dict[asyncio.AbstractEventLoop, dict[Subscription, list[_Entry]]] = {}
        with self._lock:
            for channel, channel_entries in by_channel.items():
                for subscription in self._by_channel.get(channel, ()):
                    deliveries = per_loop.get(subscription.loop)
                    if deliveries is None:
                        deliveries = per_loop[subscription.loop] = {}
                    if len(subscription.channels) == 1:
                        deliveries[subscription] = channel_entries  # one list for all, never changed
                    elif subscription not in deliveries:
                        wanted = subscription.channels
                        deliveries[subscription] = [entry for c, entry in entries if c in wanted]
        for loop, deliveries in per_loop.items():
            try:
                loop.call_soon_threadsafe(_put_all, deliveries)
            except RuntimeError:  # that loop is closed: its streams have ended
                for subscription in deliveries:
                    self.remove(subscription)

    def close_all(self, reason: str) -> None:
        """End every subscribed stream (e.g. at shutdown), so that clients reconnect and replay."""
        with self._lock:
            subscriptions = set(self._all)
        for subscription in subscriptions:
            try:
                subscription.loop.call_soon_threadsafe(subscription._fail, Closed(reason))
            except RuntimeError:
                self.remove(subscription)

    def count_slow_client(self, subscription: Subscription) -> None:
        """Drop an overflowed subscription; log it and count it in ``slow_clients``."""
        self.remove(subscription)
        with self._lock:
            self.slow_clients += 1
        logger.warning(
            "django-sse: disconnected a slow client of %s: %s",
            ", ".join(subscription.channels),
            subscription._failure,
        )


def _put_all(deliveries: dict[Subscription, list[_Entry]]) -> None:
    for subscription, entries in deliveries.items():
        subscription._put(entries)
