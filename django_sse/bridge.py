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
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import enum
import queue
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable
from typing import Any

from django.db import connections

__all__ = [
    "END",
    "IDLE",
    "AsyncSource",
    "Signal",
    "SyncSource",
    "async_source",
    "is_async_iterable",
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


class AsyncSource:
    """Items of a stream for an async consumer (an ASGI server)."""

    def __init__(self) -> None:
        self._pending: asyncio.Future[Any] | None = None

    def _start(self) -> Awaitable[Any]:
        raise NotImplementedError

    async def get(self, timeout: float | None) -> Any:
        """The next item, ``IDLE`` after ``timeout`` seconds without one, or ``END``."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._start())
        done, _ = await asyncio.wait({self._pending}, timeout=timeout)
        if not done:
            return IDLE
        future, self._pending = self._pending, None
        return future.result()

    async def aclose(self) -> None:
        """Close the iterable (a sync one once its item in progress is produced)."""
        raise NotImplementedError


class _NativeAsync(AsyncSource):
    """An async iterable on the consumer's own event loop."""

    def __init__(self, iterable: AsyncIterable[Any]) -> None:
        super().__init__()
        self._iterator: AsyncIterator[Any] = aiter(iterable)

    async def _next(self) -> Any:
        try:
            return await anext(self._iterator)
        except StopAsyncIteration:
            return END

    def _start(self) -> Awaitable[Any]:
        return self._next()

    async def aclose(self) -> None:
        if self._pending is not None:
            # Cancelling the pending step runs the generator's finally now,
            # rather than after the item it is waiting for.
            self._pending.cancel()
            await asyncio.wait({self._pending})
            self._pending = None
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

    def _start(self) -> Awaitable[Any]:
        return asyncio.wrap_future(self._worker.request())

    async def aclose(self) -> None:
        self._worker.close()


def async_source(iterable: Iterable[Any] | AsyncIterable[Any]) -> AsyncSource:
    """Wrap a sync or async iterable for an async consumer."""
    if is_async_iterable(iterable):
        return _NativeAsync(iterable)  # type: ignore[arg-type]
    return _SyncInAsync(iterable)  # type: ignore[arg-type]


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
        self._source = _NativeAsync(iterable)
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
