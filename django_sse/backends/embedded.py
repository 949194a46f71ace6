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

from django.db import router, transaction

from .. import history
from ..conf import SSESettings
from ..delivery.hub import Delivery, Subscription
from ..event import Event
from ..models import StoredEvent
from . import wakeup
from .base import BaseBackend
from .dispatcher import Dispatcher

__all__ = ["EmbeddedBackend"]

logger = logging.getLogger("django_sse")


class EmbeddedBackend(BaseBackend):
    """One process's streams, fed by a :class:`~django_sse.backends.dispatcher.Dispatcher`.

    A publish in this process is handed to the hub at once when it commits (when it is the
    next id; otherwise it wakes the dispatcher, which reads it back in order); one in another
    process (a management command, another server process) wakes the dispatcher through the
    database's wake-up (see :mod:`django_sse.backends.wakeup`), and the dispatcher also looks
    every ``POLL_INTERVAL`` seconds while streams are open, in case a wake-up was lost.
    Reading by id in the order ids were committed keeps every stream in order, with nothing
    skipped. With history off there is no database: events go straight to this process's
    streams, and never to another's.
    """

    def __init__(self, settings: SSESettings) -> None:
        super().__init__(settings)
        self.dispatcher: Dispatcher | None = None
        if settings.history:
            self.dispatcher = Dispatcher(
                self.hub, settings, self._make_wakeup, poll_interval=settings.poll_interval
            )
        # Without history: ids of this process's own, in the order of delivery.
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._position = 0

    @staticmethod
    def _make_wakeup() -> wakeup.Wakeup:
        return wakeup.for_database(router.db_for_write(StoredEvent))

    def publish(self, channel: str, event: Event) -> Event:
        if self.dispatcher is not None:
            transaction.on_commit(
                functools.partial(self._committed, channel, event), using=router.db_for_write(StoredEvent)
            )
            return event
        with self._lock:
            self._position = next(self._counter)
            event = dataclasses.replace(event, id=str(self._position))
            self.hub.deliver([Delivery(channel, self._position, event)])
        return event

    def _committed(self, channel: str, event: Event) -> None:
        assert self.dispatcher is not None
        self.dispatcher.committed(channel, event)
        # After this process's own streams have it: on PostgreSQL this is a round trip.
        try:
            self.dispatcher.wakeup.announce(history.id_of(event))
        except Exception as error:  # the database went away after the commit: they will poll
            logger.warning("django-sse: could not wake the other processes for event %s: %s", event.id, error)

    def subscribe(
        self, channels: Sequence[str], loop: asyncio.AbstractEventLoop, *, keys: Iterable[str] = ()
    ) -> tuple[Subscription, int]:
        conf = self.settings
        subscription = Subscription(
            self.hub, channels, conf.client_buffer, loop, buffer_bytes=conf.client_buffer_bytes, keys=keys
        )
        if self.dispatcher is not None:
            return subscription, self.dispatcher.add(subscription)
        with self._lock:
            self.hub.add(subscription)
            return subscription, self._position

    def stop(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()
