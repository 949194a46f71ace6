"""Many processes and machines: announcements through a Channels layer (Redis), history in the database.

Each process joins one Channels group per channel its streams watch, and fans
out locally, so Redis traffic per publish grows with processes, not clients.
A message on the layer only says "there is something new": the process's
dispatcher then reads new events from the database by id, as the embedded
backend does. So events reach every stream in id order, whichever process
published them, and a lost message loses nothing: the next one, or the next
liveness ping, reads everything stored since.

The layer is at-most-once and says nothing when it loses its connection, so
each process sends itself a ping through it every ``PING_INTERVAL`` seconds.
When a ping does not come back, every channel stream of the process ends
(its client reconnects and replays from history), new streams end right after
their replay, and ``publish`` raises :class:`~django_sse.PublishError` after
storing the event; when pings come back, the backend resumes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any, TypeVar

from django.db import router, transaction

from ..conf import SSESettings
from ..delivery.bridge import THREAD_PREFIX
from ..delivery.hub import REVOCATION_CHANNEL, Subscription, Unavailable
from ..event import Event
from ..exceptions import PublishError
from ..models import StoredEvent
from . import wakeup
from .base import BaseBackend
from .dispatcher import Dispatcher

__all__ = ["CONNECTION_ERRORS", "ChannelLayerBackend", "group_name"]

logger = logging.getLogger("django_sse")

T = TypeVar("T")

#: Prefix of the Channels groups (and process channels) this backend uses.
PREFIX = "django-sse."


def group_name(channel: str) -> str:
    """The Channels group of a django-sse channel."""
    if channel == REVOCATION_CHANNEL:
        return "django-sse-revoke"  # group names may not have its ":", and no channel's has "-" here
    return PREFIX + channel


class _ConnectionErrors(logging.Filter):
    """Drops channels_redis's traceback for each failed reconnect: an outage gets one warning of ours
    when it starts and one when it ends, not one traceback a second."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        while error is not None:
            if isinstance(error, (OSError, asyncio.TimeoutError)) or any(
                cls.__name__ in ("ConnectionError", "TimeoutError") for cls in type(error).__mro__
            ):
                self.dropped += 1
                return False
            error = error.__cause__ or error.__context__
        return True


#: Installed on channels_redis's loggers by the first backend; remove it to see each traceback.
CONNECTION_ERRORS = _ConnectionErrors()


class ChannelLayerBackend(BaseBackend):
    """Fan-out across processes and machines through the ``CHANNEL_LAYERS`` entry ``CHANNEL_LAYER``."""

    needs_history = True

    def __init__(self, settings: SSESettings) -> None:
        super().__init__(settings)
        from channels.layers import get_channel_layer

        self._wakeup = wakeup.LocalWakeup()  # the layer carries the announcements between processes
        #: Reads the announced events from history; woken only by the layer and by each ping.
        self.dispatcher = Dispatcher(self.hub, settings, lambda: self._wakeup, poll_interval=None)
        self._lock = threading.Lock()

        for name in ("channels_redis.core", "channels_redis.pubsub"):
            logging.getLogger(name).addFilter(CONNECTION_ERRORS)
        self.layer = get_channel_layer(self.settings.channel_layer)
        if self.layer is None:
            raise LookupError(f"No channel layer {self.settings.channel_layer!r} in CHANNEL_LAYERS.")
        self.available = True
        #: How many times the layer was found unreachable.
        self.outages = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._channel_name = ""
        self._groups: set[str] = set()
        self._pong: asyncio.Event | None = None
        self._ready = threading.Event()
        self._ready_by = 0.0  # monotonic time by which the listener should have its channel
        self._down_since = 0.0

    # Publishing

    def publish(self, channel: str, event: Event) -> Event:
        using = router.db_for_write(StoredEvent)
        if transaction.get_connection(using).in_atomic_block:
            # Announced at commit. A failure then is logged, not raised: raising would skip the
            # transaction's other on_commit callbacks. Streams have ended anyway when the layer
            # is down, and clients replay the event when they reconnect.
            transaction.on_commit(lambda: self._announce(channel, event), using=using, robust=True)
        else:
            self._announce(channel, event)
        return event

    def _announce(self, channel: str, event: Event) -> None:
        self.dispatcher.committed(channel, event)  # this process's own streams need no round trip
        message = {"type": "sse.event", "id": event.id, "channel": channel}
        try:
            self._start_listener()
            self._run(self.layer.group_send(group_name(channel), message))
        except Exception as exc:
            self._mark_down(exc)
            raise PublishError(event, f"the channel layer is unavailable ({exc!r})") from exc

    # Subscribing

    def subscribe(
        self, channels: Sequence[str], loop: asyncio.AbstractEventLoop, *, keys: Iterable[str] = ()
    ) -> tuple[Subscription, int]:
        if self.available:
            try:
                self._start_listener()
                self._run(self._join(channels))
            except Exception as exc:
                self._mark_down(exc)
        subscription = self.new_subscription(channels, loop, keys=keys)
        position = self.dispatcher.add(subscription)
        if not self.available:
            # It ends after its replay; the client comes back after `retry` and replays again.
            loop.call_soon_threadsafe(subscription.end, Unavailable("channel layer unavailable"))
        self.dispatcher.wake()  # read what was committed while the groups were being joined
        return subscription, position

    async def _join(self, channels: Iterable[str]) -> None:
        for channel in (REVOCATION_CHANNEL, *channels):  # revocations reach every process with streams
            if channel not in self._groups:
                await self.layer.group_add(group_name(channel), self._channel_name)
                self._groups.add(channel)

    async def _leave_unused(self) -> None:
        await self._leave(self._groups - self.hub.channels() - {REVOCATION_CHANNEL})

    async def _leave(self, channels: Iterable[str]) -> None:
        for channel in list(channels):
            self._groups.discard(channel)
            await self.layer.group_discard(group_name(channel), self._channel_name)

    # The listener: one thread and event loop per process.

    def _start_listener(self) -> None:
        """Start the listener once; raise if it has no channel of the layer yet."""
        with self._lock:
            if self._loop is None:
                self._ready_by = time.monotonic() + self.settings.ping_interval
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._serve, args=(self._loop,), name=f"{THREAD_PREFIX}-layer", daemon=True
                )
                self._thread.start()
        # Callers wait for the listener's first PING_INTERVAL at most, not each as long again.
        if not self._ready.wait(max(0.0, self._ready_by - time.monotonic())):
            raise TimeoutError("the channel layer gave no channel yet")

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        except RuntimeError as exc:  # its loop is closed: stop()ped (a publish on_commit after a reset)
            coroutine.close()
            raise RuntimeError("the backend has stopped") from exc
        try:
            return future.result(timeout=self.settings.ping_interval)
        finally:
            future.cancel()

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = loop.create_task(self._listen())
        try:
            with contextlib.suppress(asyncio.CancelledError):  # by stop()
                loop.run_until_complete(self._task)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    async def _listen(self) -> None:
        self._pong = asyncio.Event()
        while not self._channel_name:
            try:
                self._channel_name = await self.layer.new_channel(PREFIX)
            except Exception as exc:
                self._mark_down(exc)
                await asyncio.sleep(1)
        self._ready.set()
        pinger = asyncio.ensure_future(self._ping_forever())
        try:
            while True:
                try:
                    message = await self.layer.receive(self._channel_name)
                except Exception as exc:
                    self._mark_down(exc)
                    await asyncio.sleep(1)
                    continue
                if message.get("type") == "sse.event":
                    announced = str(message.get("id"))
                    if announced.isdigit():
                        self._wakeup.heard(int(announced))
                    else:
                        self.dispatcher.wake()
                elif message.get("type") == "sse.ping":
                    self._pong.set()
        finally:
            pinger.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                # Stopped: leave the groups now, rather than let the layer expire them.
                await asyncio.wait_for(self._leave(self._groups), self.settings.ping_interval)

    async def _ping_forever(self) -> None:
        assert self._pong is not None
        interval = self.settings.ping_interval
        while True:
            await asyncio.sleep(interval)
            self._pong.clear()
            try:
                await asyncio.wait_for(self.layer.send(self._channel_name, {"type": "sse.ping"}), interval)
                await asyncio.wait_for(self._pong.wait(), interval)
                if not self.available:
                    # A restarted Redis has forgotten the groups (the core layer keeps them there).
                    self._groups.clear()
                await self._join(self.hub.channels())
                await self._leave_unused()
            except Exception as exc:
                self._mark_down(exc)
                continue
            if not self.available:
                self.available = True
                logger.warning(
                    "django-sse: the channel layer is reachable again after %.0f s; channel streams resume",
                    time.monotonic() - self._down_since,
                )
            self.dispatcher.wake()  # catch up with anything whose announcement was lost

    def stop(self) -> None:
        self.dispatcher.stop()
        with self._lock:
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has ended already
            loop.call_soon_threadsafe(self._end_listener)
        thread.join(2 * self.settings.ping_interval)  # it leaves its groups first, within one

    def _end_listener(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _mark_down(self, exc: BaseException) -> None:
        if self.available:
            self.available = False
            self._down_since = time.monotonic()
            self.outages += 1
            logger.warning("django-sse: the channel layer is unavailable (%r); ending channel streams", exc)
        self.hub.close_all("channel layer unavailable", Unavailable)
