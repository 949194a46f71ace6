"""The fan-out interface every backend implements."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import ClassVar

from django.core.exceptions import ImproperlyConfigured

from ..conf import SSESettings
from ..delivery.hub import Hub, Subscription
from ..event import Event

__all__ = ["BaseBackend"]


class BaseBackend(ABC):
    """Delivers published events to the subscribed streams of this process.

    ``publish`` is called after the event is stored (with history on), with
    its id assigned; a backend must deliver events to each subscription in id
    order. ``subscribe`` registers a stream and tells from which id on it
    will receive events: every event with a greater id, none with a smaller.
    """

    #: Whether the backend reads its events back from history, so that ``HISTORY`` may not be off
    #: (it is then refused with ``ImproperlyConfigured``, and by check ``django_sse.E008``).
    needs_history: ClassVar[bool] = False

    def __init__(self, settings: SSESettings) -> None:
        if self.needs_history and not settings.history:
            raise ImproperlyConfigured(
                f"{type(self).__name__} needs history: events are stored so that any process can read them."
            )
        self.settings = settings
        self.hub = Hub()

    @abstractmethod
    def publish(self, channel: str, event: Event) -> Event:
        """Deliver ``event`` to every subscriber of ``channel``; return it as delivered.

        With history on, ``event`` is stored and has its id. With history
        off it has none, and the backend gives it one, increasing in the
        order of delivery.
        """

    @abstractmethod
    def subscribe(
        self, channels: Sequence[str], loop: asyncio.AbstractEventLoop, *, keys: Iterable[str] = ()
    ) -> tuple[Subscription, int]:
        """Register a subscription for a stream running on ``loop``; return it and its start id.

        ``keys`` are the stream's revocation keys. Events published on
        :data:`~django_sse.delivery.hub.REVOCATION_CHANNEL` are revocations: the
        backend delivers them, in order with the events, to the hub of every
        process (which ends the streams they name).

        Called from a worker thread (it may query the database), not from ``loop``; it must not
        hold a lock of the backend's across a database query.
        """

    def new_subscription(
        self, channels: Sequence[str], loop: asyncio.AbstractEventLoop, *, keys: Iterable[str] = ()
    ) -> Subscription:
        """A subscription of this backend's hub for a stream on ``loop``, sized by the
        ``CLIENT_BUFFER`` settings; not added to the hub yet (``subscribe`` does that)."""
        conf = self.settings
        return Subscription(
            self.hub, channels, conf.client_buffer, loop, buffer_bytes=conf.client_buffer_bytes, keys=keys
        )

    def close(self, reason: str = "server shutting down") -> None:
        """End every subscribed stream of this process, so that its client reconnects and replays."""
        self.hub.close_all(reason)

    def stop(self) -> None:
        """Release the backend's threads and connections (when it is replaced, e.g. in tests)."""
        return None
