"""``publish`` and ``apublish``: send an event to every stream watching a channel."""

from __future__ import annotations

import datetime
import itertools
import threading
from typing import Any

from asgiref.sync import sync_to_async

from . import history, signals
from .backends import get_backend
from .channel_names import validate_channel
from .conf import get_settings
from .delivery import records
from .event import Event

__all__ = ["apublish", "prune_history", "publish"]

#: History is pruned in passing once every this many publishes of a process.
PRUNE_EVERY = 100
#: The longest event type history stores.
MAX_EVENT_TYPE_LENGTH = 200

_publishes = itertools.count(1)
_prune_lock = threading.Lock()


def publish(channel: str, data: Any, *, event: str | None = None) -> Event:
    """Publish ``data`` (a ``str``, or anything JSON-serialisable) on ``channel``.

    With history on (the default) the event is stored first, so a client
    that reconnects gets it too. Returns the published :class:`Event` with
    its ``id``. Raises ``ValueError`` for a bad channel name or event type
    (CR or LF, or longer than 200 characters), for ``data=None`` (an event
    without data never fires in a browser), ``TypeError`` for data that
    cannot be JSON-encoded or an event type that is not a ``str``.
    Callable from any sync code: views, signals, commands, threads. Inside
    a transaction, streams see the event once the transaction commits.
    """
    started = records.publish_started()  # the latency histogram counts from here
    try:
        published = _publish(channel, data, event)
    finally:
        records.publish_ended(started)
    records.count("published")
    signals.send(signals.event_published, type(get_backend()), channel=channel, event=published)
    return published


def _publish(channel: str, data: Any, event: str | None) -> Event:
    validate_channel(channel)
    if data is None:
        # Event(data=None) means "no data field", and browsers fire no event without data.
        raise ValueError(
            "publish() needs data: an event without data is never fired by browsers. "
            "Publish a JSON value such as {} or [] (or the str 'null' for JSON null)."
        )
    new = Event(data=data, event=event)
    if event is not None and len(event) > MAX_EVENT_TYPE_LENGTH:
        raise ValueError(f"An event type may be at most {MAX_EVENT_TYPE_LENGTH} characters long (history).")
    if get_settings().history:
        new = history.store(channel, new)
        if next(_publishes) % PRUNE_EVERY == 0:
            prune_history()
    return get_backend().publish(channel, new)


async def apublish(channel: str, data: Any, *, event: str | None = None) -> Event:
    """``publish`` for async code."""
    return await sync_to_async(publish)(channel, data, event=event)


def prune_history() -> int:
    """Apply the ``HISTORY_MAX_EVENTS`` and ``HISTORY_MAX_AGE`` settings now; return events deleted."""
    conf = get_settings()
    max_age = None if conf.history_max_age is None else datetime.timedelta(seconds=conf.history_max_age)
    if not _prune_lock.acquire(blocking=False):
        return 0  # another thread of this process is pruning already
    try:
        return history.prune(max_events=conf.history_max_events, max_age=max_age)
    finally:
        _prune_lock.release()
