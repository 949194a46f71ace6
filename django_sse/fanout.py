"""Local fan-out: the streams of this process that are subscribed to channels.

A publish is handed over once per event loop, not once per client: each
stream's event loop (the server's, or a per-stream loop under WSGI) gets one
callback per batch, which appends to each subscriber's bounded buffer there.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import Iterable, Sequence

from .event import Event

__all__ = ["Closed", "Hub", "SlowClient", "Subscription"]

logger = logging.getLogger("django_sse")


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
        self._buffer: collections.deque[Event] = collections.deque()
        self._limit = buffer
        self._wake = asyncio.Event()
        self._failure: Exception | None = None

    async def get(self) -> Event:
        """The next event; raises ``SlowClient`` or ``Closed`` when the stream must end."""
        while not self._buffer:
            if self._failure is not None:
                raise self._failure
            self._wake.clear()
            await self._wake.wait()
        return self._buffer.popleft()

    def close(self) -> None:
        """Stop receiving events (idempotent)."""
        self.hub.remove(self)

    # Called on self.loop only.

    def _put(self, events: Iterable[Event]) -> None:
        if self._failure is not None:
            return
        self._buffer.extend(events)
        if len(self._buffer) > self._limit:
            self._buffer.clear()  # free the memory now; the client replays from history
            self._fail(SlowClient(f"more than {self._limit} events waiting"))
            self.hub.count_slow_client(self)
        self._wake.set()

    def _fail(self, failure: Exception) -> None:
        if self._failure is None:
            self._failure = failure
        self._wake.set()


class Hub:
    """Subscriptions by channel, for one process; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_channel: dict[str, set[Subscription]] = collections.defaultdict(set)
        self.slow_clients = 0

    def add(self, subscription: Subscription) -> None:
        """Start delivering the subscription's channels to it."""
        with self._lock:
            for channel in subscription.channels:
                self._by_channel[channel].add(subscription)

    def remove(self, subscription: Subscription) -> None:
        """Stop delivering to the subscription (idempotent)."""
        with self._lock:
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
        with self._lock:
            return len({s for subs in self._by_channel.values() for s in subs})

    def deliver(self, batch: Sequence[tuple[str, Event]]) -> None:
        """Hand ``(channel, event)`` pairs, in order, to every subscriber; from any thread."""
        per_loop: dict[asyncio.AbstractEventLoop, dict[Subscription, list[Event]]] = {}
        with self._lock:
            for channel, event in batch:
                for subscription in self._by_channel.get(channel, ()):
                    per_loop.setdefault(subscription.loop, {}).setdefault(subscription, []).append(event)
        for loop, events_by_subscription in per_loop.items():
            try:
                loop.call_soon_threadsafe(_put_all, events_by_subscription)
            except RuntimeError:  # that loop is closed: its streams have ended
                for subscription in events_by_subscription:
                    self.remove(subscription)

    def close_all(self, reason: str) -> None:
        """End every subscribed stream (e.g. at shutdown), so that clients reconnect and replay."""
        with self._lock:
            subscriptions = {s for subs in self._by_channel.values() for s in subs}
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


def _put_all(events_by_subscription: dict[Subscription, list[Event]]) -> None:
    for subscription, events in events_by_subscription.items():
        subscription._put(events)
