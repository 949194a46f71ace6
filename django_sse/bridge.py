"""The one place where sync and async iteration meet.

A stream's source may be a sync or an async iterable, and it may be served by
an ASGI server (which iterates asynchronously) or a WSGI server (which
iterates synchronously). Django bridges a mismatch by collecting the whole
iterator into a list first, which never sends an endless stream. Here each
mismatched source gets a dedicated thread instead and is advanced one item
at a time, on demand.

Every source offers ``get(timeout)``: the next item, ``IDLE`` when nothing
arrived within ``timeout`` seconds (the caller sends a heartbeat and asks
again; the item in progress is kept, never cancelled), or ``END``.

On the async side this is the per-event hot path of every stream, so it
creates no task and no timer per item: an async iterable is advanced by one
long-lived task (or by the consumer itself when no heartbeat can interrupt
it), and each source has one heartbeat timer, re-armed only when it fires.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import enum
import functools
import queue
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

from django.db import connections

__all__ = [
    "END",
    "IDLE",
    "NOT_READY",
    "AsyncSource",
    "Signal",
    "SyncSource",
    "async_source",
    "is_async_iterable",
    "merge",
    "sync_source",
]

#: Thread names, so that the threads a stream costs can be seen and counted.
THREAD_PREFIX = "django-sse"


class Signal(enum.Enum):
    """What ``get()`` returns instead of an item."""

    IDLE = "idle"
    END = "end"


IDLE = Signal.IDLE
END = Signal.END


def is_async_iterable(source: object) -> bool:
    """True for async iterables; Django's rule too (an object that is both counts as sync)."""
    return not hasattr(source, "__iter__") and hasattr(source, "__aiter__")


# ---------------------------------------------------------------- async side


class _NotReady(enum.Enum):
    NOT_READY = "not ready"


#: What a source's ``_take()`` returns while the item asked for is still being produced.
NOT_READY = _NotReady.NOT_READY


class AsyncSource:
    """Items of a stream for an async consumer (an ASGI server); itself an async iterable.

    A subclass produces one item at a time, on demand: ``_take()`` returns the
    next item if it is ready, else starts producing it (once) and returns
    ``NOT_READY``; the producer calls ``_ready()``, on the loop, when it is.
    The heartbeat is one timer per source, re-armed only when it fires: a
    timer per item would cost more than the rest of the item's way.
    """

    def __init__(self) -> None:
        self._waiter: asyncio.Future[Signal | None] | None = None
        self._deadline: float | None = None  # loop time at which the current wait returns IDLE
        self._timer: asyncio.TimerHandle | None = None
        #: A source merging this one: woken instead of this one's waiter.
        self._parent: AsyncSource | None = None

    def _take(self) -> Any:
        raise NotImplementedError

    def take_ready(self) -> Any:
        """An item that is there already (e.g. buffered), or ``NOT_READY``; never starts producing one."""
        return NOT_READY

    def _ready(self) -> None:
        if self._parent is not None:
            self._parent._ready()
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self, timeout: float | None) -> Any:
        """The next item, ``IDLE`` after ``timeout`` seconds without one, or ``END``."""
        if (item := self._take()) is not NOT_READY:
            return item
        loop = asyncio.get_running_loop()
        self._deadline = None if timeout is None else loop.time() + timeout
        if self._deadline is not None and (self._timer is None or self._timer.when() > self._deadline):
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(self._deadline, self._beat)
        while True:
            self._waiter = waiter = loop.create_future()
            try:
                if await waiter is IDLE:
                    return IDLE
            finally:
                self._waiter = None
            # A wake-up may find nothing to take (e.g. only events sent already): wait on.
            if (item := self._take()) is not NOT_READY:
                return item

    def _beat(self) -> None:
        timer, self._timer = self._timer, None
        waiter = self._waiter
        if timer is None or waiter is None or waiter.done() or self._deadline is None:
            return  # nobody waits for a heartbeat: the next wait arms the timer again
        if self._deadline > timer.when():  # armed for an earlier wait: this one waits on
            self._timer = waiter.get_loop().call_at(self._deadline, self._beat)
        else:
            waiter.set_result(IDLE)

    def __aiter__(self) -> AsyncIterator[Any]:
        return _items(self)

    async def aclose(self) -> None:
        """Close the iterable (a sync one once its item in progress is produced)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._waiter is not None:
            self._waiter.cancel()  # a get() still waiting (a sync consumer's) ends too


async def _items(source: AsyncSource) -> AsyncIterator[Any]:
    try:
        while (item := await source.get(None)) is not END:
            yield item
    finally:
        await source.aclose()


class _NativeAsync(AsyncSource):
    """An async iterable on the consumer's own event loop.

    Advanced by one long-lived task, one item per request: a heartbeat never
    interrupts the item in progress, and no task is created per item.
    """

    def __init__(self, iterable: AsyncIterable[Any]) -> None:
        super().__init__()
        self._iterator: AsyncIterator[Any] = aiter(iterable)
        self._pump: asyncio.Task[None] | None = None
        self._request: asyncio.Future[None] | None = None  # what the pump awaits between items
        self._item: Any = NOT_READY
        self._error: BaseException | None = None
        self._closing = False
        self._direct: asyncio.Task[Any] | None = None  # a task awaiting an item itself, see get()

    async def get(self, timeout: float | None) -> Any:
        if timeout is not None or self._pump is not None:
            return await super().get(timeout)
        # No heartbeat to interrupt the wait: the consumer's own task advances the iterator.
        self._direct = asyncio.current_task()
        try:
            return await anext(self._iterator)
        except StopAsyncIteration:
            return END
        finally:
            self._direct = None

    def _take(self) -> Any:
        item, self._item = self._item, NOT_READY
        if item is NOT_READY:
            if self._error is not None:
                raise self._error
            if self._pump is None:
                self._pump = asyncio.get_running_loop().create_task(self._run())
            elif self._request is not None:
                self._request.set_result(None)
                self._request = None
        return item

    async def _run(self) -> None:
        while not self._closing:
            try:
                self._item = await anext(self._iterator)
            except StopAsyncIteration:
                self._item = END
            except BaseException as exc:  # delivered to the consumer, which re-raises it
                self._error = exc
                self._ready()
                if isinstance(exc, Exception):
                    return
                raise  # a cancellation (aclose) ends this task too
            self._ready()
            if self._item is END:
                return
            self._request = asyncio.get_running_loop().create_future()
            await self._request

    async def aclose(self) -> None:
        await super().aclose()
        if self._direct is not None and self._direct is not asyncio.current_task():
            # A get() in progress in another task (a sync consumer's): cancelling it runs the
            # generator's finally now.
            self._direct.cancel()
            await asyncio.wait({self._direct})
        if self._pump is not None and not self._pump.done():
            # Cancelling the pump runs the generator's finally now, rather than after the item
            # it is waiting for. _closing stops the pump if the generator swallows the cancellation.
            self._closing = True
            self._pump.cancel()
            await asyncio.wait({self._pump})
        aclose = getattr(self._iterator, "aclose", None)
        if aclose is not None:
            await aclose()


class _Worker:
    """A sync iterator on its own daemon thread, advanced one item per request.

    One thread for the iterator's whole life, so thread-bound state such as
    database connections stays consistent; daemon, so an iterator blocked
    forever cannot hold up the process's exit.
    """

    def __init__(self, iterable: Iterable[Any]) -> None:
        self._iterator = iter(iterable)
        self._requests: queue.SimpleQueue[concurrent.futures.Future[Any] | None] = queue.SimpleQueue()
        context = contextvars.copy_context()
        threading.Thread(
            target=context.run, args=(self._run,), name=f"{THREAD_PREFIX}-sync", daemon=True
        ).start()

    def request(self) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._requests.put(future)
        return future

    def close(self) -> None:
        """Close the iterator once the item in progress (if any) is produced; does not wait."""
        self._requests.put(None)

    def _run(self) -> None:
        try:
            while (future := self._requests.get()) is not None:
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(next(self._iterator, END))
                except BaseException as exc:  # delivered to the consumer, which re-raises it
                    future.set_exception(exc)
        finally:
            try:
                close = getattr(self._iterator, "close", None)
                if close is not None:
                    close()
            finally:
                connections.close_all()


class _SyncInAsync(AsyncSource):
    """A sync iterable for an async consumer: on a worker thread."""

    def __init__(self, iterable: Iterable[Any]) -> None:
        super().__init__()
        self._worker = _Worker(iterable)
        self._pending: concurrent.futures.Future[Any] | None = None

    def _take(self) -> Any:
        if self._pending is None:
            self._pending = self._worker.request()
            self._pending.add_done_callback(functools.partial(self._done, asyncio.get_running_loop()))
        if not self._pending.done():
            return NOT_READY
        future, self._pending = self._pending, None
        return future.result()

    def _done(self, loop: asyncio.AbstractEventLoop, _: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            loop.call_soon_threadsafe(self._ready)

    async def aclose(self) -> None:
        await super().aclose()
        self._worker.close()


class _Merged(AsyncSource):
    """Items of several sources as each becomes ready; ends when all have ended."""

    def __init__(self, sources: Iterable[AsyncSource]) -> None:
        super().__init__()
        self._sources = list(sources)
        self._open = list(self._sources)  # those that have not ended
        for source in self._sources:
            source._parent = self

    def _take(self) -> Any:
        for source in list(self._open):
            item = source._take()
            if item is END:
                self._open.remove(source)
            elif item is not NOT_READY:
                # The others are asked first next time, so that a busy source cannot starve them.
                self._open.remove(source)
                self._open.append(source)
                return item
        return NOT_READY if self._open else END

    def take_ready(self) -> Any:
        for source in self._open:
            if (item := source.take_ready()) is not NOT_READY:
                return item
        return NOT_READY

    async def aclose(self) -> None:
        await super().aclose()
        for source in self._sources:
            await source.aclose()


def async_source(iterable: Iterable[Any] | AsyncIterable[Any]) -> AsyncSource:
    """Wrap a sync or async iterable for an async consumer (a source is its own)."""
    if isinstance(iterable, AsyncSource):
        return iterable
    if is_async_iterable(iterable):
        return _NativeAsync(iterable)  # type: ignore[arg-type]
    return _SyncInAsync(iterable)  # type: ignore[arg-type]


def merge(*iterables: Iterable[Any] | AsyncIterable[Any]) -> AsyncSource:
    """Items of all ``iterables`` (sync or async) as each becomes ready."""
    return _Merged(async_source(it) for it in iterables)


# ----------------------------------------------------------------- sync side


class SyncSource:
    """Items of a stream for a sync consumer (a WSGI server)."""

    def __init__(self) -> None:
        self._pending: concurrent.futures.Future[Any] | None = None

    def _start(self) -> concurrent.futures.Future[Any]:
        raise NotImplementedError

    def get(self, timeout: float | None) -> Any:
        """The next item, ``IDLE`` after ``timeout`` seconds without one, or ``END``."""
        if self._pending is None:
            self._pending = self._start()
        done, _ = concurrent.futures.wait([self._pending], timeout=timeout)
        if not done:
            return IDLE
        future, self._pending = self._pending, None
        return future.result()

    def close(self) -> None:
        """Close the iterable (a sync one once its item in progress is produced); does not wait."""
        raise NotImplementedError


class _SyncInThread(SyncSource):
    """A sync iterable for a sync consumer: on a worker thread, so heartbeats
    can be written while the iterator blocks (and a WSGI server notices a
    dead client only when a write fails)."""

    def __init__(self, iterable: Iterable[Any]) -> None:
        super().__init__()
        self._worker = _Worker(iterable)

    def _start(self) -> concurrent.futures.Future[Any]:
        return self._worker.request()

    def close(self) -> None:
        self._worker.close()


class _AsyncInThread(SyncSource):
    """An async iterable for a sync consumer: on an event loop of its own, in a thread."""

    def __init__(self, iterable: AsyncIterable[Any]) -> None:
        super().__init__()
        self._loop = asyncio.new_event_loop()
        self._source = async_source(iterable)
        context = contextvars.copy_context()
        threading.Thread(
            target=context.run, args=(self._run,), name=f"{THREAD_PREFIX}-async", daemon=True
        ).start()

    def _run(self) -> None:
        try:
            self._loop.run_forever()
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()

    def _start(self) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(self._source.get(None), self._loop)

    def close(self) -> None:
        done = asyncio.run_coroutine_threadsafe(self._source.aclose(), self._loop)
        done.add_done_callback(lambda _: self._loop.call_soon_threadsafe(self._loop.stop))


def sync_source(iterable: Iterable[Any] | AsyncIterable[Any]) -> SyncSource:
    """Wrap a sync or async iterable for a sync consumer."""
    if is_async_iterable(iterable):
        return _AsyncInThread(iterable)  # type: ignore[arg-type]
    return _SyncInThread(iterable)  # type: ignore[arg-type]
