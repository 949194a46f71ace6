"""What a stream with channels sends, in order, with no gap and no duplicate:

1. an ``id:`` line with the current position (fresh connect), or every stored
   event after ``Last-Event-ID`` (resume), or a reset event (resume impossible);
2. the view's ``initial_events()`` (fresh connect and reset only);
3. the view's own ``stream()`` events and live channel events, as they come.

The subscription is made before history is read, so an event published
meanwhile is in one or both; live events at or below the last id sent are
skipped.

Live events are the hot path, one per event and stream: they are taken from
the subscription's buffer by the consumer itself, with no task, generator or
timer per event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

from .. import history
from ..backends import BaseBackend, get_backend
from ..event import Event
from . import bridge, records, shutdown
from .bridge import END, NOT_READY, AsyncSource, Polled
from .hub import Closed, SlowClient, Subscription

__all__ = ["ChannelStream"]

_REPLAY_BATCH = 500

#: The stream's revocation keys, or a function that gives them (called on a worker thread).
Keys = Iterable[str] | Callable[[], Iterable[str]]

#: The view's ``initial_events()``, called once the channels are subscribed.
Initial = Callable[[], Awaitable[Iterable[Any] | AsyncIterable[Any]]]


def _checked_own(item: Any) -> Any:
    if isinstance(item, Event) and item.id is not None:
        raise ValueError(
            "In a stream with channels, ids are the channels' positions: an event of the view's own "
            f"must not have an id (got id={item.id!r})."
        )
    return item


class ChannelStream(AsyncSource):
    """A stream's channel events (and its own): an async iterable, and its own source for the response.

    Nothing happens until it is iterated: then its head (subscribing, replay
    or reset, initial events) runs as an async generator, and live events
    follow straight from the subscription. The database work of the head
    runs on the bridge's worker threads, which give their connections back.
    """

    def __init__(
        self,
        channels: Sequence[str],
        last_event_id: str | None,
        *,
        own: Iterable[Any] | AsyncIterable[Any] | None,
        initial: Initial | None,
        reset_event: str,
        keys: Keys = (),
    ) -> None:
        super().__init__()
        #: The channels it streams.
        self.channels = tuple(channels)
        self._own = own
        self._keys = keys
        self._subscription: Subscription | None = None
        self._closed = False
        self._last_sent = 0
        self._source = bridge.async_source(self._head(channels, last_event_id, initial, reset_event))
        self._source.attach(self)
        self._live = False
        self._live_source: _Live | None = None

    def _subscribe(
        self,
        backend: BaseBackend,
        channels: Sequence[str],
        loop: asyncio.AbstractEventLoop,
        last_event_id: str | None,
    ) -> tuple[int, history.Resume]:
        """On a worker thread: subscribe, and decide how to resume."""
        keys = list(self._keys() if callable(self._keys) else self._keys)
        if not all(isinstance(key, str) for key in keys):
            raise TypeError(f"Revocation keys must be str, got {keys!r}.")
        subscription, position = backend.subscribe(channels, loop, keys=keys)
        self._subscription = subscription
        if self._closed:  # the client left while this ran: aclose() may have found no subscription
            subscription.close()
        if last_event_id is None:
            return position, history.Resume(None, "")
        if not backend.settings.history:
            return position, history.Resume(None, "no history")
        return position, history.resume(last_event_id, position)

    async def _head(
        self,
        channels: Sequence[str],
        last_event_id: str | None,
        initial: Initial | None,
        reset_event: str,
    ) -> AsyncIterator[Any]:
        backend = get_backend()
        shutdown.install()  # servers install their own handlers after loading the app: chain them now
        loop = asyncio.get_running_loop()
        position, plan = await bridge.call(self._subscribe, backend, channels, loop, last_event_id)
        self._last_sent = position
        if plan.after is not None:
            self._last_sent = plan.after
            records.count("replays")
            # Batches bounded in bytes, kept as the stored text: each event is encoded only when
            # it is its turn, so a client that does not read holds about one batch.
            max_bytes = backend.settings.client_buffer_bytes // 2
            more = True
            while more:
                batch, more = await bridge.call(
                    history.rows_after, channels, self._last_sent, _REPLAY_BATCH, max_bytes=max_bytes
                )
                records.count("replayed_events", len(batch))
                for row in batch:
                    yield history.to_event(row)
                if batch:
                    self._last_sent = batch[-1][0]
                del batch  # not held while the next batch is read
            return
        if last_event_id is not None:
            records.count("resets")
            yield Event(event=reset_event, data={"reason": plan.reason}, id=str(position))
        else:
            yield Event(id=str(position))  # sets the client's Last-Event-ID without firing an event
        if initial is not None:
            events = await initial()
            if bridge.is_async_iterable(events):
                async for item in events:
                    yield _checked_own(item)
            else:
                # A snapshot: read to its end on a worker thread, not a thread of its own per stream.
                for item in await bridge.call(list, events):
                    yield _checked_own(item)

    def poll(self) -> Polled:
        item = self._source.poll()
        if item is END and not self._live:
            # The head is done: live events from now on. Only they have ids (_OwnEvents refuses them on
            # the view's own events).
            assert self._subscription is not None
            self._live = True
            self._live_source = _Live(self._subscription, self._last_sent)
            own = self._own
            self._source = (
                self._live_source if own is None else bridge.merge(self._live_source, _OwnEvents(own))
            )
            self._source.attach(self)
            item = self._source.poll()
        if self._live_source is not None and self._live_source.ended:
            return END  # the whole stream ends with its live part, own events or not: the client replays
        return item

    def take_ready(self) -> Polled:
        return self._source.take_ready() if self._live else NOT_READY

    @property
    def end_reason(self) -> str | None:
        """Why the stream ended itself (``"slow_client"``, ``"revoked"``...), or ``None``."""
        return None if self._live_source is None else self._live_source.end_reason

    async def aclose(self) -> None:
        self._closed = True
        await super().aclose()
        try:
            await self._source.aclose()
        finally:
            if self._subscription is not None:
                self._subscription.close()


class _Live(AsyncSource):
    """Live events, from the subscription's buffer; ends cleanly (the client reconnects and replays)
    when the subscription fails."""

    def __init__(self, subscription: Subscription, last_sent: int) -> None:
        super().__init__()
        self._subscription = subscription
        self._last_sent = last_sent
        self.ended = False
        #: Why the subscription failed (a ``CloseReason`` value), once it has.
        self.end_reason: str | None = None
        subscription.on_ready = self.notify

    def poll(self) -> Polled:
        try:
            while (entry := self._subscription.pop()) is not None:
                position, event = entry
                if position is None:
                    return event
                if position > self._last_sent:
                    self._last_sent = position
                    return event
                # At or below the last id sent: replayed already.
        except (SlowClient, Closed) as failure:
            self.ended = True
            self.end_reason = failure.reason
            return END
        return NOT_READY

    def take_ready(self) -> Polled:
        item = self.poll()  # takes only what is buffered: events are put there by the hub
        return NOT_READY if item is END else item  # the next get() ends the stream


class _OwnEvents(AsyncSource):
    """The view's own events, which must have no id: ids are the channels' positions."""

    def __init__(self, iterable: Iterable[Any] | AsyncIterable[Any]) -> None:
        super().__init__()
        self._source = bridge.async_source(iterable)
        self._source.attach(self)

    def poll(self) -> Polled:
        return _checked_own(self._source.poll())

    def take_ready(self) -> Polled:
        return _checked_own(self._source.take_ready())

    async def aclose(self) -> None:
        await super().aclose()
        await self._source.aclose()
