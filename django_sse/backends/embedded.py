"""The embedded default: in-process fan-out, with the database as history and as the link between
processes on one machine.

The backend is one of two feeds of its hub, chosen once by ``HISTORY``: :class:`StoredFeed`
(history on: events are read back from the database, in id order, whichever process published
them) or :class:`MemoryFeed` (history off: no database, and no other process).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Protocol

from django.db import router, transaction

from .. import history
from ..conf import SSESettings
from ..delivery.hub import Delivery, Hub, Subscription
from ..event import Event
from ..models import StoredEvent
from . import wakeup
from .base import BaseBackend
from .dispatcher import Dispatcher

__all__ = ["EmbeddedBackend", "Feed", "MemoryFeed", "StoredFeed"]

logger = logging.getLogger("django_sse")


class Feed(Protocol):
    """Where the embedded backend's hub gets its events from."""

    def publish(self, channel: str, event: Event) -> Event:
        """Deliver ``event`` (now or when it commits); return it with its id."""

    def add(self, subscription: Subscription) -> int:
        """Add ``subscription`` to the hub; return the id it starts after."""

    def stop(self) -> None:
        """Release the feed's thread and connections."""


class EmbeddedBackend(BaseBackend):
    """One process's streams, fed by a :class:`StoredFeed` (history on) or a :class:`MemoryFeed`."""

    def __init__(self, settings: SSESettings) -> None:
        super().__init__(settings)
        self.feed: Feed = StoredFeed(self.hub, settings) if settings.history else MemoryFeed(self.hub)

    def publish(self, channel: str, event: Event) -> Event:
        return self.feed.publish(channel, event)

    def subscribe(
        self, channels: Sequence[str], loop: asyncio.AbstractEventLoop, *, keys: Iterable[str] = ()
    ) -> tuple[Subscription, int]:
        subscription = self.new_subscription(channels, loop, keys=keys)
        return subscription, self.feed.add(subscription)

    def stop(self) -> None:
        self.feed.stop()


class StoredFeed:
    """History on: a :class:`~django_sse.backends.dispatcher.Dispatcher` reads events back from
    the database.

    A publish in this process is handed to the hub at once when it commits (when it is the next
    id; otherwise it wakes the dispatcher, which reads it back in order); one in another process
    (a management command, another server process) wakes the dispatcher through the database's
    wake-up (see :mod:`django_sse.backends.wakeup`), and the dispatcher also looks every
    ``POLL_INTERVAL`` seconds while streams are open, in case a wake-up was lost. Reading by id
    in the order ids were committed keeps every stream in order, with nothing skipped.
    """

    def __init__(self, hub: Hub, settings: SSESettings) -> None:
        self.dispatcher = Dispatcher(hub, settings, self._make_wakeup, poll_interval=settings.poll_interval)

    @staticmethod
    def _make_wakeup() -> wakeup.Wakeup:
        return wakeup.for_database(router.db_for_write(StoredEvent))

    def publish(self, channel: str, event: Event) -> Event:
        transaction.on_commit(
            functools.partial(self._committed, channel, event), using=router.db_for_write(StoredEvent)
        )
        return event

    def _committed(self, channel: str, event: Event) -> None:
        self.dispatcher.committed(channel, event)
        # After this process's own streams have it: on PostgreSQL this is a round trip.
        try:
            self.dispatcher.wakeup.announce(history.id_of(event))
        except Exception as error:  # the database went away after the commit: they will poll
            logger.warning("django-sse: could not wake the other processes for event %s: %s", event.id, error)

    def add(self, subscription: Subscription) -> int:
        return self.dispatcher.add(subscription)

    def stop(self) -> None:
        self.dispatcher.stop()


class MemoryFeed:
    """History off: events go straight to this process's hub, never to another process.

    Ids are this process's own, 1, 2, 3... in the order of delivery, starting again with the
    process; nothing is kept to replay (a reconnecting client gets a reset).
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        #: The id of the last event delivered.
        self.position = 0

    def publish(self, channel: str, event: Event) -> Event:
        with self._lock:
            # Under the lock: ids in the order of delivery, and a subscribe sees a position that is.
            position = next(self._counter)
            event = dataclasses.replace(event, id=str(position))
            self.hub.deliver([Delivery(channel, position, event)])
            self.position = position
        return event

    def add(self, subscription: Subscription) -> int:
        with self._lock:
            self.hub.add(subscription)
            return self.position

    def stop(self) -> None:
        return None
