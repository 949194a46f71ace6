"""Local fan-out: the streams of this process that are subscribed to channels.

A publish is handed over once per event loop, not once per client: each
stream's event loop (the server's, or a per-stream loop under WSGI) gets one
callback per batch, which appends to each subscriber's bounded buffer there.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from ..event import Event
from . import records

__all__ = [
    "REVOCATION_CHANNEL",
    "Closed",
    "Delivery",
    "Hub",
    "Revoked",
    "SlowClient",
    "Subscription",
    "Unavailable",
]

logger = logging.getLogger("django_sse")

#: Where revocations travel, in order with the events: not a valid channel name, so never a user's.
REVOCATION_CHANNEL = "django-sse:revoke"

#: An event with its position (its id as an int; None without one), as a subscription buffers it.
_Entry = tuple[int | None, Event]


class Delivery(NamedTuple):
    """One event for :meth:`Hub.deliver`: its channel, its position (the id, typed) and the event.

    The position comes from where the id was made (a history row, a counter): it is never
    parsed back from the event's ``str`` id.
    """

    channel: str
    position: int | None
    event: Event


class SlowClient(Exception):
    """The client fell further behind than its buffer allows; its stream ends so that it can replay."""

    #: What :data:`~django_sse.signals.stream_closed` calls it (a ``CloseReason`` value).
    reason = "slow_client"


class Closed(Exception):
    """The subscription was closed from outside (the server is shutting down)."""

    reason = "shutdown"


class Unavailable(Closed):
    """The backend lost its connection (Redis, the PostgreSQL listener); the client replays."""

    reason = "unavailable"


class Revoked(Closed):
    """The stream was revoked (see :func:`django_sse.revoke`); its client reconnects and is checked again."""

    reason = "revoked"

    def __init__(self, channel: str | None, key: str | None) -> None:
        super().__init__(f"revoked (channel={channel!r}, key={key!r})")
        self.channel = channel
        self.key = key


class Subscription:
    """One stream's view of its channels: a bounded buffer of events, filled from any thread."""

    def __init__(
        self,
        hub: Hub,
        channels: Sequence[str],
        buffer: int,
        loop: asyncio.AbstractEventLoop,
        *,
        buffer_bytes: int | None = None,
        keys: Iterable[str] = (),
    ) -> None:
        self.hub = hub
        self.channels = tuple(channels)
        self.loop = loop
        #: The view's revocation keys for this stream (see :func:`django_sse.revoke`).
        self.keys = frozenset(keys)
        #: Called on ``loop`` when events arrive or the stream must end; set by the stream's reader.
        self.on_ready: Callable[[], None] | None = None
        self._buffer: collections.deque[_Entry] = collections.deque()
        self._limit = buffer
        self._limit_bytes = buffer_bytes
        self._bytes = 0  # encoded size of the events in _buffer
        self._failure: Exception | None = None

    def pop(self) -> _Entry | None:
        """The next event with its id as an int, or ``None`` if none is waiting.

        Raises ``SlowClient`` or ``Closed`` when the stream must end.
        """
        if self._buffer:
            entry = self._buffer.popleft()
            self._bytes -= len(entry[1].encode())
            return entry
        if self._failure is not None:
            raise self._failure
        return None

    def close(self) -> None:
        """Stop receiving events (idempotent)."""
        self.hub.remove(self)

    # Called on self.loop only.

    def _put(self, entries: Sequence[_Entry], size: int) -> None:
        if self._failure is not None:
            return
        self._buffer.extend(entries)
        self._bytes += size
        if len(self._buffer) > self._limit:
            self._overflow(f"more than {self._limit} events waiting")
        elif self._limit_bytes is not None and self._bytes > self._limit_bytes and len(self._buffer) > 1:
            # One event is always let through, however large: a limit below it would cut everybody.
            self._overflow(f"more than {self._limit_bytes} bytes waiting")
        elif self.on_ready is not None:
            self.on_ready()

    def _overflow(self, reason: str) -> None:
        self._buffer.clear()  # free the memory now; the client replays from history
        self._bytes = 0
        self.end(SlowClient(reason))
        self.hub.count_slow_client(self)

    def end(self, failure: Exception) -> None:
        if self._failure is None:
            self._failure = failure
        if self.on_ready is not None:
            self.on_ready()


class Hub:
    """Subscriptions by channel, for one process; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_channel: dict[str, set[Subscription]] = collections.defaultdict(set)
        self._all: set[Subscription] = set()  # so that counting them is no work
        self.slow_clients = 0
        #: Streams ended by a revocation.
        self.revoked = 0

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

    def deliver(self, batch: Sequence[Delivery]) -> None:
        """Hand ``batch``, in order, to every subscriber; from any thread.

        A revocation among them (channel ``REVOCATION_CHANNEL``) ends its streams in that
        place: they get the events before it and none after.
        """
        start = 0
        for index, (channel, _, event) in enumerate(batch):
            if channel == REVOCATION_CHANNEL:
                if start < index:
                    self._deliver(batch[start:index])
                self._revoke(event)
                start = index + 1
        if start == 0:
            self._deliver(batch)
        elif start < len(batch):
            self._deliver(batch[start:])

    def _deliver(self, batch: Sequence[Delivery]) -> None:
        entries = [(channel, (position, event)) for channel, position, event in batch]
        by_channel: dict[str, list[_Entry]] = {}
        for channel, entry in entries:
            by_channel.setdefault(channel, []).append(entry)
        per_loop: dict[asyncio.AbstractEventLoop, dict[Subscription, tuple[list[_Entry], int]]] = {}
        with self._lock:
            for channel, channel_entries in by_channel.items():
                subscribers = self._by_channel.get(channel)
                if not subscribers:
                    continue
                channel_size = _size(channel_entries)
                for subscription in subscribers:
                    deliveries = per_loop.get(subscription.loop)
                    if deliveries is None:
                        deliveries = per_loop[subscription.loop] = {}
                    if len(subscription.channels) == 1:
                        # One list (and size) for all, never changed.
                        deliveries[subscription] = (channel_entries, channel_size)
                    elif subscription not in deliveries:
                        wanted = subscription.channels
                        mine = [entry for c, entry in entries if c in wanted]
                        deliveries[subscription] = (mine, _size(mine))
        # Handed over by the publish() that is running here (this process's own event): the first
        # stream to have it in its buffer tells the latency (django_sse.stats).
        first = _FirstDelivery(records.current_publish())
        for loop, deliveries in per_loop.items():
            try:
                loop.call_soon_threadsafe(_put_all, deliveries, first)
            except RuntimeError:  # that loop is closed: its streams have ended
                for subscription in deliveries:
                    self.remove(subscription)

    def _revoke(self, revocation: Event) -> None:
        try:
            target = json.loads(revocation.data_text() or "")
            channel, key = target["channel"], target["key"]
        except (ValueError, TypeError, KeyError):
            logger.warning("django-sse: ignored a malformed revocation %r", revocation.data)
            return
        with self._lock:
            candidates = self._all if channel is None else self._by_channel.get(channel, set())
            matched = [s for s in candidates if key is None or key in s.keys]
            self.revoked += len(matched)
        for subscription in matched:
            self.remove(subscription)  # now, so that no later event reaches it
            with contextlib.suppress(RuntimeError):  # a closed loop: that stream has ended
                subscription.loop.call_soon_threadsafe(subscription.end, Revoked(channel, key))
        if matched:
            logger.info(
                "django-sse: ended %d stream(s) (revoked: channel=%r, key=%r)", len(matched), channel, key
            )

    def close_all(self, reason: str, failure: type[Closed] = Closed) -> None:
        """End every subscribed stream (e.g. at shutdown), so that clients reconnect and replay."""
        with self._lock:
            subscriptions = set(self._all)
        for subscription in subscriptions:
            try:
                subscription.loop.call_soon_threadsafe(subscription.end, failure(reason))
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


def _size(entries: Sequence[_Entry]) -> int:
    return sum(len(event.encode()) for _, event in entries)


class _FirstDelivery:
    __slots__ = ("started",)

    def __init__(self, started: float | None) -> None:
        self.started = started


def _put_all(deliveries: dict[Subscription, tuple[list[_Entry], int]], first: _FirstDelivery) -> None:
    if first.started is not None:  # before the events are let go: they may be read at once
        started, first.started = first.started, None
        records.observe_latency(started)
    for subscription, (entries, size) in deliveries.items():
        subscription._put(entries, size)
