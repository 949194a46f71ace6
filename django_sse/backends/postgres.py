"""Many machines without Redis: announcements through PostgreSQL's ``LISTEN``/``NOTIFY``, history in
the same database.

Every publish sends ``NOTIFY django_sse, '<id>'`` through the publishing connection; each
server process with streams holds one psycopg 3 async connection that ``LISTEN``\\ s (on a
thread and event loop of its own), and its dispatcher then reads the new events from history
by id, as the other backends do. The payload is the id only, never the event's data, so it
stays far below PostgreSQL's 8000-byte limit and a forged one costs a query, not an event.

PostgreSQL delivers a notification to every listening session when its transaction commits,
and never loses one while the session stays connected, so the dispatcher does not poll. The
listening connection is checked every ``PING_INTERVAL`` seconds. When it is lost, every
channel stream of the process ends (its client reconnects and replays from history), new
streams end right after their replay, and the listener connects again every second; once it
listens again, streams resume by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import DatabaseError, router, transaction

from ..conf import SSESettings
from ..delivery.bridge import THREAD_PREFIX
from ..delivery.hub import Subscription, Unavailable
from ..event import Event
from ..exceptions import PublishError
from ..models import StoredEvent
from . import wakeup
from .base import BaseBackend
from .dispatcher import Dispatcher

__all__ = ["PostgresBackend"]

logger = logging.getLogger("django_sse")

#: Why the streams of a process end when its listening connection is lost.
UNAVAILABLE = "PostgreSQL listener unavailable"


class PostgresBackend(BaseBackend):
    """Fan-out across processes and machines through ``LISTEN``/``NOTIFY`` on the history's database."""

    needs_history = True

    def __init__(self, settings: SSESettings) -> None:
        super().__init__(settings)
        self.alias = router.db_for_write(StoredEvent)
        self._wakeup = wakeup.LocalWakeup()  # the listener passes on what it hears
        #: Reads the announced events from history; woken only by the listener.
        self.dispatcher = Dispatcher(self.hub, settings, lambda: self._wakeup, poll_interval=None)
        #: False while this process's listening connection is lost.
        self.available = True
        #: How many times the listening connection was lost.
        self.outages = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._down_since = 0.0

    # Publishing

    def publish(self, channel: str, event: Event) -> Event:
        connection = transaction.get_connection(self.alias)
        if connection.in_atomic_block:
            # Queued with the transaction: PostgreSQL delivers it when (and only if) the event
            # commits. A failure here fails the transaction, and the event with it.
            self._notify(event)
            transaction.on_commit(lambda: self.dispatcher.committed(channel, event), using=self.alias)
            return event
        self.dispatcher.committed(channel, event)  # this process's own streams need no round trip
        try:
            self._notify(event)
        except DatabaseError as exc:
            raise PublishError(event, f"PostgreSQL could not NOTIFY ({exc})") from exc
        return event

    def _notify(self, event: Event) -> None:
        with transaction.get_connection(self.alias).cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [wakeup.NOTIFY_CHANNEL, event.id])

    # Subscribing

    def subscribe(
        self, channels: Sequence[str], loop: asyncio.AbstractEventLoop, *, keys: Iterable[str] = ()
    ) -> tuple[Subscription, int]:
        self._start_listener()
        subscription = self.new_subscription(channels, loop, keys=keys)
        # Anything committed after this position and before the listener listens is read when it
        # starts to: it wakes the dispatcher each time it (re)connects.
        position = self.dispatcher.add(subscription)
        if not self.available:
            # It ends after its replay; the client comes back after `retry` and replays again.
            loop.call_soon_threadsafe(subscription.end, Unavailable(UNAVAILABLE))
        return subscription, position

    def stop(self) -> None:
        self.dispatcher.stop()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(task.cancel)

    # The listener: one thread, event loop and connection per process.

    def _start_listener(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=asyncio.run, args=(self._listen(),), name=f"{THREAD_PREFIX}-listener", daemon=True
                )
                self._thread.start()

    async def _listen(self) -> None:
        import psycopg

        self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        interval = self.settings.ping_interval
        params = wakeup.listener_params(self.alias)
        while True:
            listener: Any = None
            try:
                listener = await asyncio.wait_for(
                    psycopg.AsyncConnection.connect(**params, autocommit=True), interval
                )
                await asyncio.wait_for(listener.execute(f"LISTEN {wakeup.NOTIFY_CHANNEL}"), interval)
                self._mark_up()
                self.dispatcher.wake()  # events may have committed while nobody listened: look
                while True:
                    async for notify in listener.notifies(timeout=interval):
                        if notify.payload.isdigit():
                            self._wakeup.heard(int(notify.payload))
                        else:
                            self.dispatcher.wake()
                    # Quiet for PING_INTERVAL: make sure the connection is still there.
                    await asyncio.wait_for(listener.execute("SELECT 1"), interval)
            except Exception as exc:
                self._mark_down(exc)
            finally:
                if listener is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(listener.close(), interval)
            await asyncio.sleep(wakeup.RECONNECT_DELAY)

    def _mark_up(self) -> None:
        if not self.available:
            self.available = True
            logger.warning(
                "django-sse: the PostgreSQL listener is back after %.0f s; channel streams resume",
                time.monotonic() - self._down_since,
            )

    def _mark_down(self, exc: BaseException) -> None:
        if self.available:
            self.available = False
            self._down_since = time.monotonic()
            self.outages += 1
            logger.warning(
                "django-sse: the PostgreSQL listener is unavailable (%s); ending channel streams", exc
            )
        self.hub.close_all(UNAVAILABLE, Unavailable)
