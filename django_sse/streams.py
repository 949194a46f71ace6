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
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from asgiref.sync import sync_to_async

from . import bridge, history, shutdown
from .backends import get_backend
from .bridge import END, NOT_READY, AsyncSource
from .event import Event
from .fanout import Closed, SlowClient, Subscription

__all__ = ["ChannelStream", "channel_stream"]

_REPLAY_BATCH = 500


def _own(item: Any) -> Any:
    if isinstance(item, Event) and item.id is not None:
        raise ValueError(
            "In a stream with channels, ids are the channels' positions: an event of the view's own "
            f"must not have an id (got id={item.id!r})."
        )
    return item


def channel_stream(
    channels: Sequence[str],
    last_event_id: str | None,
    *,
    own: Iterable[Any] | AsyncIterable[Any] | None,
    initial: Callable[[], Iterable[Any] | AsyncIterable[Any]] | None,
    reset_event: str,
) -> ChannelStream:
    """The items of a stream subscribed to ``channels``; see the module docstring."""
    return ChannelStream(channels, last_event_id, own=own, initial=initial, reset_event=reset_event)


class ChannelStream(AsyncSource):
    """A stream's channel events (and its own): an async iterable, and its own source for the response.

    Nothing happens until it is iterated: then its head (subscribing, replay
    or reset, initial events) runs as an async generator, and live events
    follow straight from the subscription.
    """

    def __init__(
        self,
        channels: Sequence[str],
        last_event_id: str | None,
        *,
        own: Iterable[Any] | AsyncIterable[Any] | None,
        initial: Callable[[], Iterable[Any] | AsyncIterable[Any]] | None,
        reset_event: str,
    ) -> None:
        super().__init__()
        self._own = own
        self._subscription: Subscription | None = None
        self._last_sent = 0
        self._source = bridge.async_source(self._head(channels, last_event_id, initial, reset_event))
        self._source._parent = self
        self._live = False
        self._live_source: _Live | None = None

    async def _head(
        self,
        channels: Sequence[str],
        last_event_id: str | None,
        initial: Callable[[], Iterable[Any] | AsyncIterable[Any]] | None,
        reset_event: str,
    ) -> AsyncIterator[Any]:
        backend = get_backend()
        shutdown.install()  # servers install their own handlers after loading the app: chain them now
        loop = asyncio.get_running_loop()
        self._subscription, position = await sync_to_async(backend.subscribe)(channels, loop)
        resuming = last_event_id is not None
        plan = (
            await sync_to_async(history.resume)(last_event_id, position)
            if resuming and backend.settings.history
            else history.Resume(None, "no history" if resuming else "")
        )
        self._last_sent = position
        if plan.after is not None:
            self._last_sent = plan.after
            while batch := await sync_to_async(history.events_after)(
                channels, self._last_sent, _REPLAY_BATCH
            ):
                for _, event in batch:
                    yield event
                self._last_sent = int(batch[-1][1].id or 0)
        else:
            if resuming:
                yield Event(event=reset_event, data={"reason": plan.reason}, id=str(position))
            else:
                yield Event(id=str(position))  # sets the client's Last-Event-ID without firing an event
            if initial is not None:
                async for item in bridge.async_source(await sync_to_async(initial)()):
                    yield _own(item)

    def _take(self) -> Any:
        item = self._source._take()
        if item is END and not self._live:
            # The head is done: live events from now on. Only they have ids (_Own refuses them on
            # the view's own events).
            assert self._subscription is not None
            self._live = True
            self._live_source = _Live(self._subscription, self._last_sent)
            own = self._own
            self._source = self._live_source if own is None else bridge.merge(self._live_source, _Own(own))
            self._source._parent = self
            item = self._source._take()
        if self._live_source is not None and self._live_source.ended:
            return END  # the whole stream ends with its live part, own events or not: the client replays
        return item

    def take_ready(self) -> Any:
        return self._source.take_ready() if self._live else NOT_READY

    async def aclose(self) -> None:
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
        subscription.on_ready = self._ready

    def _take(self) -> Any:
        try:
            while (entry := self._subscription.take()) is not None:
                position, event = entry
                if position is None:
                    return event
                if position > self._last_sent:
                    self._last_sent = position
                    return event
                # At or below the last id sent: replayed already.
        except (SlowClient, Closed):
            self.ended = True
            return END
        return NOT_READY

    def take_ready(self) -> Any:
        item = self._take()  # takes only what is buffered: events are put there by the hub
        return NOT_READY if item is END else item  # the next get() ends the stream


class _Own(AsyncSource):
    """The view's own events, which must have no id: ids are the channels' positions."""

    def __init__(self, iterable: Iterable[Any] | AsyncIterable[Any]) -> None:
        super().__init__()
        self._source = bridge.async_source(iterable)
        self._source._parent = self

    def _take(self) -> Any:
        return _own(self._source._take())

    async def aclose(self) -> None:
        await super().aclose()
        await self._source.aclose()
