"""Django signals for the life of a stream and for every publish.

Connect receivers as for any Django signal::

    from django.dispatch import receiver

    from django_sse.signals import stream_closed


    @receiver(stream_closed)
    def count_slow_clients(sender, reason, name, **kwargs):
        if reason == "slow_client":
            ...

A receiver must accept ``**kwargs``. One that raises is logged (as
``send_robust()`` does) and never ends a stream or fails a publish.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.dispatch import Signal

__all__ = ["event_published", "stream_closed", "stream_opened"]

#: A stream has started to be sent. ``sender``: the view class (for an ``EventStreamView``), else
#: the response's class. Arguments: ``name`` (the view's dotted path or ``"EventStreamResponse"``),
#: ``channels`` (a tuple, empty for a stream of its own events only), ``request`` (the
#: ``HttpRequest``, or ``None`` for a response made outside an ``EventStreamView``).
stream_opened = Signal()

#: A stream has ended. As :data:`stream_opened`, plus ``reason`` (a
#: :class:`~django_sse.delivery.records.CloseReason`, which compares equal to its value: ``"ended"``,
#: ``"client_left"``, ``"slow_client"``, ``"revoked"``, ``"shutdown"``, ``"unavailable"``,
#: ``"error"``, ``"limit"``), ``events`` and ``bytes`` (what it handed to the server) and
#: ``duration`` (seconds).
stream_closed = Signal()

#: :func:`~django_sse.publish` (or ``apublish``) has delivered an event to the backend, in the
#: publishing process. ``sender``: the backend's class. Arguments: ``channel``, ``event`` (the
#: :class:`~django_sse.Event`, with its ``id``).
event_published = Signal()

#: Receivers that are still running, so that they are not garbage-collected midway.
_running: set[asyncio.Task[Any]] = set()


def send(signal: Signal, sender: Any, **kwargs: Any) -> None:
    """Send ``signal`` without ever blocking or failing the caller (a stream, a publish).

    On an event loop (a stream served by an ASGI server) the receivers run in
    a task of their own, as ``asend_robust()`` runs them: async ones on the
    loop, sync ones on Django's thread for sync code. Elsewhere they run at
    once, as ``send_robust()`` runs them.
    """
    if not signal.has_listeners(sender):
        return  # the usual case, and free
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None:
        signal.send_robust(sender, **kwargs)
        return
    task = loop.create_task(signal.asend_robust(sender, **kwargs))
    _running.add(task)
    task.add_done_callback(_running.discard)
