"""What this process's streams have done: read with :func:`get_stats`.

Every stream a server sends (an :class:`~django_sse.EventStreamResponse`,
and so every :class:`~django_sse.EventStreamView`) is counted from its first
byte to its end (:mod:`django_sse.delivery.records`): the events and bytes
handed to the server, and when it ends, why (a :class:`CloseReason`), which
:data:`~django_sse.signals.stream_closed` says too. The numbers are per
process, since it started (or since :func:`reset_stats`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from . import limits
from .backends import open_subscriptions
from .delivery import bridge, records
from .delivery.records import LATENCY_BUCKETS, CloseReason

__all__ = ["LATENCY_BUCKETS", "CloseReason", "Histogram", "Stats", "get_stats", "reset_stats"]


@dataclass(frozen=True)
class Histogram:
    """Observations counted in buckets, as Prometheus histograms are (not cumulative here)."""

    #: Upper bounds of the buckets; a last bucket without a bound (``+Inf``) follows.
    bounds: tuple[float, ...]
    #: Observations per bucket: ``len(bounds) + 1`` of them.
    counts: tuple[int, ...]
    #: The sum of all observations, in seconds.
    sum: float

    @property
    def count(self) -> int:
        """How many observations there were."""
        return sum(self.counts)


@dataclass(frozen=True)
class Stats:
    """A snapshot of this process's streams, from :func:`get_stats`."""

    #: Streams being sent now, by stream name (the view's dotted path, or ``"EventStreamResponse"``).
    streaming: dict[str, int]
    #: Responses made and not yet closed, what ``MAX_STREAMS`` counts (a stream not yet sent too).
    open_streams: int
    #: Streams started since the process started.
    opened: int
    #: Streams ended, by :class:`CloseReason` value.
    closed: dict[str, int]
    #: Events handed to the server, all streams together (heartbeats are not events).
    events_sent: int
    #: Bytes handed to the server, all streams together (heartbeats and ``retry:`` included).
    bytes_sent: int
    #: Events published by this process (:func:`~django_sse.publish`).
    published: int
    #: Reconnections resumed from history after their ``Last-Event-ID``.
    replays: int
    #: Events sent by those replays.
    replayed_events: int
    #: Reconnections that could not be resumed and were sent the view's reset event.
    resets: int
    #: Streams refused with 503 (``MAX_STREAMS``, ``MAX_SYNC_STREAMS``).
    refused: int
    #: Streams of this process subscribed to channels now.
    subscribed: int
    #: Threads running sync streams now (``django-sse-sync``).
    sync_threads: int
    #: Seconds from :func:`~django_sse.publish` being called to the event being in a stream's
    #: buffer on that stream's event loop, for events published and delivered by this process.
    publish_latency: Histogram = field(repr=False)

    @property
    def streams(self) -> int:
        """Streams being sent now, all names together."""
        return sum(self.streaming.values())


def get_stats() -> Stats:
    """This process's streams now, and what they have done since it started (or since a reset)."""
    open_records, totals, closed, buckets, latency_sum = records.snapshot()
    latency = Histogram(LATENCY_BUCKETS, buckets, latency_sum)
    streaming: Counter[str] = Counter()
    events, sent = totals["events_sent"], totals["bytes_sent"]
    for record in open_records:  # the open streams' own counts: read, not locked (ints, one writer each)
        streaming[record.name] += 1
        events += record.events
        sent += record.bytes
    return Stats(
        streaming=dict(streaming),
        open_streams=limits.open_streams(),
        opened=totals["opened"],
        closed=closed,
        events_sent=events,
        bytes_sent=sent,
        published=totals["published"],
        replays=totals["replays"],
        replayed_events=totals["replayed_events"],
        resets=totals["resets"],
        refused=limits.refused_streams(),
        subscribed=open_subscriptions(),
        sync_threads=bridge.sync_stream_threads(),
        publish_latency=latency,
    )


def reset_stats() -> None:
    """Forget the totals (not the open streams): for tests."""
    records.reset()
