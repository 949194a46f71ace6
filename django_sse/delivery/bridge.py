"""The one place where sync and async code meet.

A stream's source may be a sync or an async iterable, and it may be served by
an ASGI server (which iterates asynchronously) or a WSGI server (which
iterates synchronously). Django bridges a mismatch by collecting the whole
iterator into a list first, which never sends an endless stream. Here each
mismatched source gets a dedicated thread instead and is advanced one item
at a time, on demand.

The iteration protocol, for every source:

- ``poll()``: the next item if it is ready, else ``NOT_READY`` (and the item
  is being produced: the source calls ``notify()`` when it is), or ``END``;
- ``take_ready()``: an item that is there already, else ``NOT_READY``; it
  never starts producing one, so a consumer can batch what is waiting;
- ``get(timeout)``: the next item, ``IDLE`` when none came within
  ``timeout`` seconds (the caller sends a heartbeat and asks again; the item
  in progress is kept, never cancelled), or ``END``;
- ``attach(parent)``: a source that merges this one is notified instead;
  ``listen(callback)``: a consumer that polls from a callback is.

On the async side this is the per-event hot path of every stream, so it
creates no task and no timer per item: an async iterable is advanced by one
long-lived task that reads a few items ahead, and each source has one
heartbeat timer, re-armed only when it fires.

Sync code that a stream needs when it starts (a view's sync hooks, database
reads) runs through :func:`call`: on a small bounded pool, never on the
thread Django keeps for the request, and its database connections are given
back when it returns. :func:`release_request_thread` lets that per-request
thread go once a stream has started, so that an open stream holds no thread
and no database connection of its own.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import enum
import functools
import inspect
import queue
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

from asgiref.sync import AsyncToSync, SyncToAsync, sync_to_async
from django.db import close_old_connections, connections

from ..event import Event

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # typing.TypeIs from Python 3.13

__all__ = [
    "END",
    "IDLE",
    "NOT_READY",
    "THREAD_PREFIX",
    "AsyncSource",
    "Marker",
    "SyncSource",
    "ThreadLimitReached",
    "async_source",
    "call",
    "is_async_iterable",
    "merge",
    "release_request_thread",
    "sync_source",
    "sync_stream_threads",
]

P = ParamSpec("P")
T = TypeVar("T")

#: Thread names, so that the threads a stream costs can be seen and counted.
THREAD_PREFIX = "django-sse"


class Marker(enum.Enum):
    """What the protocol's methods return instead of an item."""

    #: ``get()``: no item within the timeout.
    IDLE = "idle"
    #: The source has ended.
    END = "end"
    #: ``poll()``, ``take_ready()``: no item yet.
    NOT_READY = "not ready"


IDLE: Final = Marker.IDLE
END: Final = Marker.END
NOT_READY: Final = Marker.NOT_READY

#: What ``poll()`` returns: an item, ``NOT_READY`` or ``END``.
Polled = Any
#: What ``get()`` returns: an item, ``IDLE`` or ``END``.
Got = Any


def is_async_iterable(source: object) -> TypeIs[AsyncIterable[Any]]:
    """True for async iterables; Django's rule too (an object that is both counts as sync).

    Narrows the type either way: ``False`` means an ``Iterable`` for the streams here.
    """
    return not hasattr(source, "__iter__") and hasattr(source, "__aiter__")


# ----------------------------------------------------------- sync code, from async code

#: Threads for the sync work of starting streams: a view's sync hooks, subscribing, replay.
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _start_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            from ..conf import get_settings

            _pool = concurrent.futures.ThreadPoolExecutor(
                get_settings().worker_threads, thread_name_prefix=f"{THREAD_PREFIX}-worker"
            )
        return _pool


def _and_give_connections_back(func: Callable[[], T]) -> T:
    try:
        return func()
    finally:
        # As at the end of a request: with CONN_MAX_AGE = 0 (and with a connection pool) the
        # connection is closed or returned now, not kept by an idle thread of ours.
        close_old_connections()


async def call(func: Callable[P, T] | Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call ``func`` from async code: await it if it is async, else run it off the event loop.

    Sync code runs on a small pool (``DJANGO_SSE["WORKER_THREADS"]`` threads)
    and gives its database connections back when done; under a sync caller
    (a WSGI server, Django's test ``Client``) it runs on the caller's
    thread, as the rest of the request does.
    """
    if inspect.iscoroutinefunction(func):
        return await func(*args, **kwargs)  # type: ignore[no-any-return]
    if getattr(AsyncToSync.executors, "current", None) is not None:
        result = await sync_to_async(func, thread_sensitive=True)(*args, **kwargs)
    else:
        context = contextvars.copy_context()
        job = functools.partial(context.run, func, *args, **kwargs)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(_start_pool(), _and_give_connections_back, job)
    if inspect.isawaitable(result):  # a sync function that returned an awaitable: an async hook
        return await result  # type: ignore[no-any-return]
    return result  # type: ignore[return-value]


class _SharedRequestExecutor(concurrent.futures.ThreadPoolExecutor):
    """One thread for the thread-sensitive work of every request whose stream has started."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        # Each request's ThreadSensitiveContext shuts its executor down when the request ends;
        # this one serves them all and lives as long as the process.
        pass


_request_executor = _SharedRequestExecutor(1, thread_name_prefix=f"{THREAD_PREFIX}-request")


def release_request_thread() -> None:
    """Let the thread Django keeps for this request go, with its database connections.

    Django runs each ASGI request in a thread-sensitive context whose
    one-thread executor (started for the request's sync signal receivers and
    sync middleware) lives until the response ends: for a stream, as long as
    the client stays. Called once the response has passed every middleware,
    this closes that thread's connections and ends it. Thread-sensitive work
    later in the request (``response.close()`` and its ``request_finished``
    receivers, or ``sync_to_async`` in an async ``stream()``) runs on one
    thread shared by all such requests of the process (``django-sse-request``)
    instead of a thread of each stream's own.
    """
    context = SyncToAsync.thread_sensitive_context.get(None)
    if context is None or getattr(context, "_executor", None) is not None:
        return  # no per-request context, or one whose executor its creator owns
    executor = SyncToAsync.context_to_thread_executor.get(context)
    if executor is _request_executor:
        return
    SyncToAsync.context_to_thread_executor[context] = _request_executor
    if executor is not None:
        executor.submit(connections.close_all)
        executor.shutdown(wait=False)


# ---------------------------------------------------------------- async side


class AsyncSource:
    """Items of a stream for an async consumer (an ASGI server); itself an async iterable.

    A subclass implements ``poll()`` (and ``take_ready()`` if it buffers)
    and calls ``notify()``, on the loop, when an item it said was not ready
    is. The heartbeat is one timer per source, re-armed only when it fires:
    a timer per item would cost more than the rest of the item's way.
    """

    def __init__(self) -> None:
        self._waiter: asyncio.Future[Marker | None] | None = None
        self._deadline: float | None = None  # loop time at which the current wait returns IDLE
        self._timer: asyncio.Handle | None = None
        # When the timer fires. Kept here: uvloop's call_at() returns a plain Handle, with no
        # when(), for a time already past, which is any time while the loop runs late.
        self._timer_at = 0.0
        self._listener: Callable[[], None] | None = None

    def poll(self) -> Polled:
        """The next item if ready, else ``NOT_READY`` (it is being produced), or ``END``."""
        raise NotImplementedError

    def take_ready(self) -> Polled:
        """An item that is there already (e.g. buffered), or ``NOT_READY``; never starts producing one."""
        return NOT_READY

    def attach(self, parent: AsyncSource) -> None:
        """Notify ``parent`` (a source that merges this one) instead of waking a consumer."""
        self._listener = parent.notify

    def listen(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` (on the loop) whenever ``notify()`` is, instead of waking ``get()``.

        For a consumer that polls from a callback rather than a task (``django_sse.asgi``).
        """
        self._listener = callback

    def notify(self) -> None:
        """Called by the producer, on the loop: an item is ready, or the source has ended."""
        if self._listener is not None:
            self._listener()
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self, timeout: float | None) -> Got:
        """The next item, ``IDLE`` after ``timeout`` seconds without one, or ``END``."""
        if (item := self.poll()) is not NOT_READY:
            return item
        loop = asyncio.get_running_loop()
        self._deadline = None if timeout is None else loop.time() + timeout
        if self._deadline is not None and (self._timer is None or self._timer_at > self._deadline):
            self._arm(loop, self._deadline)
        while True:
            self._waiter = waiter = loop.create_future()
            try:
                if await waiter is IDLE:
                    return IDLE
            finally:
                self._waiter = None
            # A wake-up may find nothing to take (e.g. only events sent already): wait on.
            if (item := self.poll()) is not NOT_READY:
                return item

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = loop.call_at(when, self._beat)

    def _beat(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done() or self._deadline is None:
            return  # nobody waits for a heartbeat: the next wait arms the timer again
        if self._deadline > self._timer_at:  # armed for an earlier wait: this one waits on
            self._arm(waiter.get_loop(), self._deadline)
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

    Advanced by one long-lived task that reads up to ``AHEAD`` items (and
    about ``AHEAD_BYTES`` of events) ahead: items the iterable yields back to
    back are taken together, and a heartbeat never interrupts the item in
    progress. The task waits only when the consumer is that far behind
    (back-pressure).
    """

    AHEAD = 64
    AHEAD_BYTES = 65_536

    def __init__(self, iterable: AsyncIterable[Any]) -> None:
        super().__init__()
        self._iterator: AsyncIterator[Any] = aiter(iterable)
        self._items: collections.deque[Any] = collections.deque()
        self._pump: asyncio.Task[None] | None = None
        self._space: asyncio.Future[None] | None = None  # what the pump awaits when AHEAD are waiting
        self._error: BaseException | None = None
        self._ended = False
        self._bytes = 0  # the encoded size of the events in _items

    def poll(self) -> Polled:
        if self._items:
            return self._pop()
        if self._error is not None:
            error, self._error = self._error, None
            self._ended = True
            raise error
        if self._ended:
            return END
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._run())
        return NOT_READY

    def take_ready(self) -> Polled:
        return self._pop() if self._items else NOT_READY

    def _pop(self) -> Any:
        item = self._items.popleft()
        self._bytes -= _size(item)
        if self._space is not None and not self._space.done():
            self._space.set_result(None)
        return item

    async def _run(self) -> None:
        items = self._items
        try:
            while True:
                item = await anext(self._iterator)
                items.append(item)
                self._bytes += _size(item)
                if len(items) == 1:
                    self.notify()
                if len(items) >= self.AHEAD or self._bytes >= self.AHEAD_BYTES:
                    self._space = asyncio.get_running_loop().create_future()
                    await self._space
                    self._space = None
        except StopAsyncIteration:
            self._ended = True
        except Exception as exc:  # delivered to the consumer, which re-raises it
            self._error = exc
        self.notify()

    async def aclose(self) -> None:
        await super().aclose()
        if self._pump is not None and not self._pump.done():
            # Cancelling the pump runs the generator's finally now, rather than after the item
            # it is waiting for.
            self._pump.cancel()
            await asyncio.wait({self._pump})
        aclose = getattr(self._iterator, "aclose", None)
        if aclose is not None:
            await aclose()


def _size(item: Any) -> int:
    # Events know their size for free; other items are small or become events later.
    return len(item.encode()) if isinstance(item, Event) else 0


class ThreadLimitReached(RuntimeError):
    """``DJANGO_SSE["MAX_SYNC_STREAMS"]`` sync streams are running already."""


_stream_threads = 0
_stream_threads_lock = threading.Lock()


def sync_stream_threads() -> int:
    """How many threads of this process are running sync streams (``django-sse-sync``)."""
    return _stream_threads


def _claim_stream_thread() -> None:
    global _stream_threads
    from ..conf import get_settings

    limit = get_settings().max_sync_streams
    with _stream_threads_lock:
        if _stream_threads >= limit:
            raise ThreadLimitReached(f"{limit} sync streams are running (DJANGO_SSE['MAX_SYNC_STREAMS'])")
        _stream_threads += 1


def _release_stream_thread() -> None:
    global _stream_threads
    with _stream_threads_lock:
        _stream_threads -= 1


class _Worker:
    """A sync iterator on its own daemon thread, advanced one item per request.

    One thread for the iterator's whole life, so thread-bound state such as
    database connections stays consistent; daemon, so an iterator blocked
    forever cannot hold up the process's exit. At most ``MAX_SYNC_STREAMS``
    of them run at once.
    """

    def __init__(self, iterable: Iterable[Any]) -> None:
        _claim_stream_thread()
        try:
            self._iterator = iter(iterable)
            self._requests: queue.SimpleQueue[concurrent.futures.Future[Any] | None] = queue.SimpleQueue()
            context = contextvars.copy_context()
            threading.Thread(
                target=context.run, args=(self._run,), name=f"{THREAD_PREFIX}-sync", daemon=True
            ).start()
        except BaseException:
            _release_stream_thread()
            raise

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
                _release_stream_thread()


class _SyncInAsync(AsyncSource):
    """A sync iterable for an async consumer: on a worker thread."""

    def __init__(self, iterable: Iterable[Any]) -> None:
        super().__init__()
        self._worker = _Worker(iterable)
        self._pending: concurrent.futures.Future[Any] | None = None

    def poll(self) -> Polled:
        if self._pending is None:
            self._pending = self._worker.request()
            self._pending.add_done_callback(functools.partial(self._done, asyncio.get_running_loop()))
        if not self._pending.done():
            return NOT_READY
        future, self._pending = self._pending, None
        return future.result()

    def _done(self, loop: asyncio.AbstractEventLoop, _: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            loop.call_soon_threadsafe(self.notify)

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
            source.attach(self)

    def poll(self) -> Polled:
        for source in list(self._open):
            item = source.poll()
            if item is END:
                self._open.remove(source)
            elif item is not NOT_READY:
                # The others are asked first next time, so that a busy source cannot starve them.
                self._open.remove(source)
                self._open.append(source)
                return item
        return NOT_READY if self._open else END

    def take_ready(self) -> Polled:
        for source in self._open:
            if (item := source.take_ready()) is not NOT_READY:
                return item
        return NOT_READY

    async def aclose(self) -> None:
        await super().aclose()
        for source in self._sources:
            await source.aclose()


def async_source(iterable: Iterable[Any] | AsyncIterable[Any]) -> AsyncSource:
    """Wrap a sync or async iterable for an async consumer (a source is its own).

    A sync iterable takes a ``django-sse-sync`` thread; raises
    :class:`ThreadLimitReached` when ``MAX_SYNC_STREAMS`` are running.
    """
    if isinstance(iterable, AsyncSource):
        return iterable
    if is_async_iterable(iterable):
        return _NativeAsync(iterable)
    return _SyncInAsync(iterable)


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

    def get(self, timeout: float | None) -> Got:
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
        return _AsyncInThread(iterable)
    return _SyncInThread(iterable)
