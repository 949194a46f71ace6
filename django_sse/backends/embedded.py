"""The embedded default: in-process fan-out, with the database as history and as the link between
processes on one machine."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import logging
import threading
from collections.abc import Iterable, Sequence

from django.db import connections, router, transaction

from .. import history
from ..bridge import THREAD_PREFIX
from ..event import Event
from ..fanout import REVOCATION_CHANNEL, Subscription
from ..models import StoredEvent
from . import wakeup
from .base import BaseBackend

__all__ = ["EmbeddedBackend"]

logger = logging.getLogger("django_sse")

_BATCH = 500
# Past this many channels, reading every new event is cheaper than naming them all in SQL.
_MAX_FILTERED_CHANNELS = 500


class EmbeddedBackend(BaseBackend):
    """One process's streams, fed by one dispatcher thread that reads new events from the database.

    A publish in this process is handed to the hub at once when it commits (when it is the
    next id; otherwise it wakes the dispatcher, which reads it back in order); one in another
    process (a management command, another server process) is found by the
    dispatcher's poll every ``POLL_INTERVAL`` seconds while streams are open.
    Reading by id in the order ids were committed keeps every stream in
    order, with nothing skipped. With history off there is no database:
    events go straight to this process's streams, and never to another's.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._lock = threading.Lock()
        self._wakeup: wakeup.Wakeup | None = None  # made on first use: the database may not be set up yet
        self._position: int | None = None  # the highest id handed to the hub
        self._thread: threading.Thread | None = None
        self._counter = itertools.count(1)  # ids without history
        self._stopped = False
        # At most half a client's buffer per delivery, so that a client that reads keeps up even
        # when a second batch arrives before it has taken the first.
        self._batch = max(1, min(_BATCH, self.settings.client_buffer // 2))

    def publish(self, channel: str, event: Event) -> Event:
        if self.settings.history:
            transaction.on_commit(
                functools.partial(self._committed, channel, event), using=router.db_for_write(StoredEvent)
            )
            return event
        with self._lock:  # ids in the order of delivery
            self._position = next(self._counter)
            event = dataclasses.replace(event, id=str(self._position))
            self.hub.deliver([(channel, event)])
        return event

    def _get_wakeup(self) -> wakeup.Wakeup:
        if self._wakeup is None:
            with self._lock:
                if self._wakeup is None:
                    self._wakeup = self._make_wakeup()
        return self._wakeup

    def _make_wakeup(self) -> wakeup.Wakeup:
        """How other processes' publishes wake this process's dispatcher, and this one's wake theirs."""
        if not self.settings.history:
            return wakeup.LocalWakeup()
        return wakeup.for_database(router.db_for_write(StoredEvent))

    def _committed(self, channel: str, event: Event) -> None:
        """A publish of this process has committed: tell the other processes, and hand it over
        to this process's streams at once if it is the next id."""
        position = int(event.id or 0)
        waker = self._get_wakeup()
        with self._lock:
            handed_over = self._position is not None and self._position == position - 1
            if handed_over:
                # Everything up to the one before it has been handed over, and ids commit in
                # order: nothing can come between. The dispatcher need not read it back.
                self.hub.deliver([(channel, event)])
                self._position = position
        if not handed_over:
            waker.set()  # another process's events may come first: the dispatcher reads them in order
        # After this process's own streams have it: on PostgreSQL this is a round trip.
        try:
            waker.announce(position)
        except Exception as error:  # the database went away after the commit: they will poll
            logger.warning("django-sse: could not wake the other processes for event %s: %s", position, error)

    def subscribe(
        self, channels: Sequence[str], loop: asyncio.AbstractEventLoop, *, keys: Iterable[str] = ()
    ) -> tuple[Subscription, int]:
        conf = self.settings
        subscription = Subscription(
            self.hub, channels, conf.client_buffer, loop, buffer_bytes=conf.client_buffer_bytes, keys=keys
        )
        if not self.settings.history:
            with self._lock:
                self._position = self._position or 0
                self.hub.add(subscription)
                return subscription, self._position
        with self._lock:
            if self._position is not None and len(self.hub):
                # The dispatcher is reading for the streams here: its position is "now", no query.
                self.hub.add(subscription)
                return subscription, self._position
        newest = history.newest_id()  # never under the lock: the dispatcher must not wait for it
        with self._lock:
            if not len(self.hub):
                # A new stream starts from now: the position of an idle dispatcher is stale.
                self._position = newest
            # (Else a stream subscribed meanwhile and the dispatcher's position is at least as new.)
            assert self._position is not None
            self.hub.add(subscription)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._dispatch, name=f"{THREAD_PREFIX}-dispatcher", daemon=True
                )
                self._thread.start()
            return subscription, self._position

    def stop(self) -> None:
        """End the dispatcher thread (when the backend is replaced, e.g. in tests)."""
        self._stopped = True
        if self._wakeup is not None:
            self._wakeup.close()

    def _poll_interval(self) -> float | None:
        """Seconds between looks for events published by other processes (None: only when woken)."""
        return self.settings.poll_interval

    def _dispatch(self) -> None:
        waker = self._get_wakeup()
        while not self._stopped:
            announced = waker.wait(self._poll_interval())
            if self._stopped or not len(self.hub):
                continue
            if announced is not None and self._position is not None and announced <= self._position:
                continue  # announced by another process, and handed over here already
            try:
                self._deliver_new_events()
            except Exception:
                logger.exception("django-sse: reading new events failed; retrying")
                # A fresh connection next time (the database may have restarted). Otherwise this
                # thread keeps one connection, rather than one per wake-up with CONN_MAX_AGE = 0.
                connections.close_all()

    def _deliver_new_events(self) -> None:
        while True:
            start = self._position
            assert start is not None
            channels = self.hub.channels()
            # Revocations too: they travel in order with the events.
            wanted = None
            if len(channels) <= _MAX_FILTERED_CHANNELS:
                wanted = sorted({*channels, REVOCATION_CHANNEL})
            # Ids commit in order, so every id up to the newest one now is visible: after this
            # read, nothing at or below the new position can turn up later, in any channel.
            newest = history.newest_id()
            if newest <= start:
                return  # nothing new: one query per poll of an idle process
            rows, more = history.rows_after(
                wanted, start, self._batch, until=newest, max_bytes=self.settings.client_buffer_bytes // 2
            )
            batch = [(row[1], history.to_event(row)) for row in rows]
            end = int(batch[-1][1].id or 0) if more else newest
            with self._lock:
                if self._position != start or not self.hub.channels() <= channels:
                    continue  # a subscribe() moved the start or added a channel meanwhile: read again
                if batch:
                    self.hub.deliver(batch)
                self._position = max(start, end)
            if not more:
                return
