"""What a stream with channels sends, in order, with no gap and no duplicate:

1. an ``id:`` line with the current position (fresh connect), or every stored
   event after ``Last-Event-ID`` (resume), or a reset event (resume impossible);
2. the view's ``initial_events()`` (fresh connect and reset only);
3. the view's own ``stream()`` events and live channel events, as they come.

The subscription is made before history is read, so an event published
meanwhile is in one or both; live events at or below the last id sent are
skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from asgiref.sync import sync_to_async

from . import bridge, history, shutdown
from .backends import get_backend
from .event import Event
from .fanout import Closed, SlowClient, Subscription

__all__ = ["channel_stream"]

_REPLAY_BATCH = 500


def _own(item: Any) -> Any:
    if isinstance(item, Event) and item.id is not None:
        raise ValueError(
            "In a stream with channels, ids are the channels' positions: an event of the view's own "
            f"must not have an id (got id={item.id!r})."
        )
    return item


async def _live(subscription: Subscription) -> AsyncIterator[Event]:
    while True:
        try:
            yield await subscription.get()
        except (SlowClient, Closed):
            return  # the stream ends cleanly; the client reconnects and replays


async def merge(*iterables: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    """Items of all ``iterables`` (sync or async) as each becomes ready."""
    sources = [bridge.async_source(it) for it in iterables]
    pending = {asyncio.ensure_future(source.get(None)): source for source in sources}
    try:
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                source = pending.pop(task)
                item = task.result()
                if item is not bridge.END:
                    yield item
                    pending[asyncio.ensure_future(source.get(None))] = source
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for source in sources:
            await source.aclose()


async def channel_stream(
    channels: Sequence[str],
    last_event_id: str | None,
    *,
    own: Iterable[Any] | AsyncIterable[Any] | None,
    initial: Callable[[], Iterable[Any] | AsyncIterable[Any]] | None,
    reset_event: str,
) -> AsyncIterator[Any]:
    """The items of a stream subscribed to ``channels``; see the module docstring."""
    backend = get_backend()
    shutdown.install()  # servers install their own handlers after loading the app: chain them now
    loop = asyncio.get_running_loop()
    subscription, position = await sync_to_async(backend.subscribe)(channels, loop)
    try:
        resuming = last_event_id is not None
        plan = (
            await sync_to_async(history.resume)(last_event_id, position)
            if resuming and backend.settings.history
            else history.Resume(None, "no history" if resuming else "")
        )
        last_sent = position
        if plan.after is not None:
            last_sent = plan.after
            while batch := await sync_to_async(history.events_after)(channels, last_sent, _REPLAY_BATCH):
                for _, event in batch:
                    yield event
                last_sent = int(batch[-1][1].id or 0)
        else:
            if resuming:
                yield Event(event=reset_event, data={"reason": plan.reason}, id=str(position))
            else:
                yield Event(id=str(position))  # sets the client's Last-Event-ID without firing an event
            if initial is not None:
                async for item in _checked(await sync_to_async(initial)()):
                    yield item
        # Only live events have ids: _checked() refuses them on the view's own events.
        live = _live(subscription) if own is None else merge(_live(subscription), _checked(own))
        async for item in live:
            if isinstance(item, Event) and item.id is not None:
                if int(item.id) <= last_sent:
                    continue  # replayed already
                last_sent = int(item.id)
            yield item
    finally:
        subscription.close()


async def _checked(iterable: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    async for item in merge(iterable):
        yield _own(item)
