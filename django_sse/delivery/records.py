"""Counting what each stream sends and why it ends, as it goes: the low end of :mod:`django_sse.stats`.

A :class:`StreamRecord` lives from a stream's first byte to its end. The code
that sends streams adds to its ``events`` and ``bytes`` (two integer
additions per batch, on the stream's own thread or loop); the totals are
summed only when :func:`django_sse.stats.get_stats` asks.
"""

from __future__ import annotations

import bisect
import contextvars
import enum
import threading
import time
from collections import Counter
from typing import Any

from .. import signals
from .bridge import ThreadLimitReached

__all__ = [
    "LATENCY_BUCKETS",
    "CloseReason",
    "StreamRecord",
    "close_reason",
    "count",
    "current_publish",
    "mark_stopping",
    "observe_latency",
    "publish_ended",
    "publish_started",
    "reset",
    "snapshot",
    "stopping",
]


class CloseReason(str, enum.Enum):
    """Why a stream ended, as :data:`~django_sse.signals.stream_closed` and the metrics say it."""

    #: The stream's own events ran out (its generator returned).
    ENDED = "ended"
    #: The client went away (or the server dropped the connection).
    CLIENT_LEFT = "client_left"
    #: The client fell behind its buffer (``CLIENT_BUFFER``); it reconnects and replays.
    SLOW_CLIENT = "slow_client"
    #: :func:`~django_sse.revoke` ended it; the client reconnects and is checked again.
    REVOKED = "revoked"
    #: The server process was asked to stop (SIGTERM or SIGINT).
    SHUTDOWN = "shutdown"
    #: The backend lost its connection (Redis, the PostgreSQL listener); the client replays.
    UNAVAILABLE = "unavailable"
    #: The stream raised an exception (logged); the client reconnects.
    ERROR = "error"
    #: A sync stream found ``MAX_SYNC_STREAMS`` threads running when it started.
    LIMIT = "limit"

    def __str__(self) -> str:
        return self.value


#: Upper bounds, in seconds, of the publish-to-delivery histogram's buckets.
LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


_lock = threading.Lock()
_records: set[StreamRecord] = set()
_totals: Counter[str] = Counter()
_closed: Counter[str] = Counter()
_latency = [0] * (len(LATENCY_BUCKETS) + 1)
_latency_sum = 0.0

#: When the publish() running in this context started (perf_counter), for the latency histogram.
_publish_started: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "django_sse_publish_started", default=None
)


class StreamRecord:
    """One stream being sent: counts its events and bytes, and reports its start and end.

    Made by the code that sends a response (``response.py``, ``asgi.py``);
    ``events`` and ``bytes`` are added to by that code only, on the stream's
    own thread or loop.
    """

    __slots__ = ("_closed", "_source", "bytes", "channels", "events", "name", "request", "sender", "started")

    def __init__(self, name: str, sender: Any, source: object, *, request: Any = None) -> None:
        #: What logs call the stream: its view's dotted path, or ``"EventStreamResponse"``.
        self.name = name
        #: The signals' sender: the view class, or the response's class.
        self.sender = sender
        #: The events the response was made with: a channel stream tells its channels and why it ended.
        self._source = source
        #: The channels it is subscribed to (empty for a stream of its own events only).
        self.channels: tuple[str, ...] = tuple(getattr(source, "channels", ()))
        #: The request, for an ``EventStreamView``'s stream.
        self.request = request
        self.events = 0
        self.bytes = 0
        self.started = time.monotonic()
        self._closed = False
        with _lock:
            _records.add(self)
            _totals["opened"] += 1
        _send(signals.stream_opened, self)

    def end(self, error: BaseException | None) -> None:
        """The stream has ended, by ``error`` (an exception, or a cancellation) or by itself."""
        self.close(close_reason(self._source, error))

    def close(self, reason: CloseReason) -> None:
        """The stream has ended, for ``reason``: count it and send ``stream_closed`` (once)."""
        if self._closed:
            return
        self._closed = True
        with _lock:
            _records.discard(self)
            _totals["events_sent"] += self.events
            _totals["bytes_sent"] += self.bytes
            _closed[reason.value] += 1
        _send(
            signals.stream_closed,
            self,
            reason=reason,
            events=self.events,
            bytes=self.bytes,
            duration=time.monotonic() - self.started,
        )


def close_reason(source: object, error: BaseException | None) -> CloseReason:
    """Why a stream over ``source`` ended, ``error`` being what ended it (``None``: it ended by itself)."""
    if error is None:
        # A channel stream ends itself (slow client, revoked...) and says why.
        reason = getattr(source, "end_reason", None)
        return CloseReason(reason) if reason is not None else CloseReason.ENDED
    if isinstance(error, ThreadLimitReached):
        return CloseReason.LIMIT
    if isinstance(error, Exception) and not isinstance(error, OSError):
        return CloseReason.ERROR
    # Cancelled or closed by the server, or a write that failed: the connection is gone.
    return CloseReason.SHUTDOWN if stopping() else CloseReason.CLIENT_LEFT


def _send(signal: Any, record: StreamRecord, **kwargs: Any) -> None:
    signals.send(
        signal, record.sender, name=record.name, channels=record.channels, request=record.request, **kwargs
    )


def count(name: str, amount: int = 1) -> None:
    """Add to one of the totals: ``published``, ``replays``, ``replayed_events``, ``resets``."""
    with _lock:
        _totals[name] += amount


def publish_started() -> contextvars.Token[float | None]:
    """Mark the start of a publish in this context; pass the token to :func:`publish_ended`."""
    return _publish_started.set(time.perf_counter())


def publish_ended(token: contextvars.Token[float | None]) -> None:
    """The publish marked by :func:`publish_started` has returned."""
    _publish_started.reset(token)


def current_publish() -> float | None:
    """When the publish running in this context started, or ``None`` outside one."""
    return _publish_started.get()


def observe_latency(started: float) -> None:
    """Count one publish-to-delivery latency, ``started`` being the publish's perf_counter."""
    global _latency_sum
    seconds = time.perf_counter() - started
    with _lock:
        _latency[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        _latency_sum += seconds


_stopping = False


def mark_stopping() -> None:
    """The process has been asked to stop: streams that end from now on end for ``shutdown``."""
    global _stopping
    _stopping = True


def stopping() -> bool:
    """Whether :func:`mark_stopping` has been called."""
    return _stopping


def snapshot() -> tuple[list[StreamRecord], Counter[str], dict[str, int], tuple[int, ...], float]:
    """The open records, the totals, closes by reason, latency bucket counts and sum, read together."""
    with _lock:
        return list(_records), Counter(_totals), dict(_closed), tuple(_latency), _latency_sum


def reset() -> None:
    """Forget the totals (not the open streams): for tests."""
    global _latency_sum
    with _lock:
        for record in _records:
            record.events = record.bytes = 0
        _totals.clear()
        _closed.clear()
        _latency[:] = [0] * len(_latency)
        _latency_sum = 0.0
