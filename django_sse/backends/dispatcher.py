"""The dispatcher: reads new events from history, in id order, and hands them to one process's hub.

Every backend that keeps history uses one (composition, not inheritance): the embedded
backend wakes it through the database's own wake-ups and a poll, the channel layer and
PostgreSQL backends through their listeners. Whoever wakes it, it reads from the database,
so the order and the ids are history's, whichever process published.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.db import connections

from .. import history
from ..conf import SSESettings
from ..delivery.bridge import THREAD_PREFIX
from ..delivery.hub import REVOCATION_CHANNEL, Delivery, Hub, Subscription
from ..event import Event
from .wakeup import Wakeup

__all__ = ["RETRY_DELAY", "Dispatcher"]

logger = logging.getLogger("django_sse")

#: Seconds before the dispatcher reads again after a failed read.
RETRY_DELAY = 1.0
_BATCH = 500
# Past this many channels, reading every new event is cheaper than naming them all in SQL.
_MAX_FILTERED_CHANNELS = 500


class Dispatcher:
    """One thread per process, started by the first subscription, that feeds ``hub`` from history.

    ``wakeup`` makes the :class:`~django_sse.backends.wakeup.Wakeup` it waits on (called on
    first use: the database may not be set up when the backend is made). ``poll_interval`` is
    the longest it waits without being woken before it looks anyway (``None``: it waits to be
    woken).
    """

    def __init__(
        self,
        hub: Hub,
        settings: SSESettings,
        wakeup: Callable[[], Wakeup],
        *,
        poll_interval: float | None,
    ) -> None:
        self.hub = hub
        self.poll_interval = poll_interval
        self._make_wakeup = wakeup
        self._wakeup: Wakeup | None = None
        self._lock = threading.Lock()
        self._position: int | None = None  # the highest id handed to the hub
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._max_bytes = settings.client_buffer_bytes // 2
        # At most half a client's buffer per delivery, so that a client that reads keeps up even
        # when a second batch arrives before it has taken the first.
        self._batch = max(1, min(_BATCH, settings.client_buffer // 2))

    @property
    def wakeup(self) -> Wakeup:
        """What the dispatcher waits on (made on first use)."""
        if self._wakeup is None:
            with self._lock:
                if self._wakeup is None:
                    self._wakeup = self._make_wakeup()
                    if self._stopped:  # made after stop() (a late commit): nobody waits on it
                        self._wakeup.close()
        return self._wakeup

    def add(self, subscription: Subscription) -> int:
        """Add ``subscription`` to the hub; return the id it starts after.

        Called from a worker thread: it may query the database (never under the lock, which the
        dispatcher takes to deliver).
        """
        with self._lock:
            if self._position is not None and len(self.hub):
                # The dispatcher is reading for the streams here: its position is "now", no query.
                self.hub.add(subscription)
                return self._position
        newest = history.newest_id()
        with self._lock:
            if not len(self.hub):
                # A new stream starts from now: the position of an idle dispatcher is stale.
                self._position = newest
            # (Else a stream subscribed meanwhile and the dispatcher's position is at least as new.)
            assert self._position is not None
            self.hub.add(subscription)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"{THREAD_PREFIX}-dispatcher", daemon=True
                )
                self._thread.start()
            return self._position

    def committed(self, channel: str, event: Event) -> bool:
        """A publish of this process has committed: hand it to the hub at once if it is the next id,
        else wake the dispatcher, which reads it back in order. Whether it was handed over."""
        position = history.id_of(event)
        waker = self.wakeup
        with self._lock:
            handed_over = self._position is not None and self._position == position - 1
            if handed_over:
                # Everything up to the one before it has been handed over, and ids commit in
                # order: nothing can come between. The dispatcher need not read it back.
                self.hub.deliver([Delivery(channel, position, event)])
                self._position = position
        if not handed_over:
            waker.set()  # another process's events may come first: the dispatcher reads them in order
        return handed_over

    def wake(self) -> None:
        """Make the dispatcher look for new events now."""
        self.wakeup.set()

    def stop(self) -> None:
        """End the dispatcher's thread."""
        with self._lock:
            self._stopped = True
            waker = self._wakeup
        if waker is not None:
            waker.close()

    def _run(self) -> None:
        waker = self.wakeup
        failed = False
        while not self._stopped:
            timeout = self.poll_interval
            if failed:  # look again soon, woken or not: a wake-up may have been spent on the failure
                timeout = RETRY_DELAY if timeout is None else min(timeout, RETRY_DELAY)
            announced = waker.wait(timeout)
            if self._stopped or not len(self.hub):
                failed = False
                continue
            position = self._position
            if not failed and announced is not None and position is not None and announced <= position:
                continue  # announced by another process, and handed over here already
            try:
                self._deliver_new_events(None if failed else announced)
                failed = False
            except Exception:
                logger.exception("django-sse: reading new events failed; retrying")
                failed = True
                # A fresh connection next time (the database may have restarted). Otherwise this
                # thread keeps one connection, rather than one per wake-up with CONN_MAX_AGE = 0.
                connections.close_all()

    def _deliver_new_events(self, announced: int | None) -> None:
        """Hand every event committed since the position to the hub, in id order.

        ``announced``: an id another process said has committed, or ``None``.
        """
        while True:
            start = self._position
            assert start is not None
            channels = self.hub.channels()
            # Revocations too: they travel in order with the events.
            wanted = None
            if len(channels) <= _MAX_FILTERED_CHANNELS:
                wanted = sorted({*channels, REVOCATION_CHANNEL})
            near, newest = None, 0
            if announced is not None:
                # The live case, in one query: an event or a few, the newest of them announced.
                near = history.rows_announced(wanted, start, announced, max_bytes=self._max_bytes)
                newest, announced = announced, None
            if near is not None:
                rows, more = near
            else:
                # Ids commit in order, so every id up to the newest one now is visible: after this
                # read, nothing at or below the new position can turn up later, in any channel.
                newest = history.newest_id()
                if newest <= start:
                    return  # nothing new: one query per look of an idle process
                rows, more = history.rows_after(
                    wanted, start, self._batch, until=newest, max_bytes=self._max_bytes
                )
            batch = [history.to_delivery(row) for row in rows]
            end = rows[-1][0] if more else newest
            with self._lock:
                if self._position != start or not self.hub.channels() <= channels:
                    continue  # a subscribe moved the start or added a channel meanwhile: read again
                if batch:
                    self.hub.deliver(batch)
                self._position = max(start, end)
            if not more:
                return
