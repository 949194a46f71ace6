"""Prometheus metrics of this process's streams, through ``prometheus_client`` (an optional extra).

Install it with ``pip install "django-sse-events[prometheus]"``. When
``prometheus_client`` is importable, the app registers :class:`StreamCollector`
on its default registry at start-up, so a metrics endpoint the project has
already (django-prometheus's ``/metrics``) serves these too; without one,
route :func:`metrics_view`.

The collector reads :func:`django_sse.stats.get_stats` when scraped: it costs
the streams nothing between scrapes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from .stats import CloseReason, get_stats

__all__ = ["StreamCollector", "metrics_view", "register"]

_registered: set[int] = set()
_lock = threading.Lock()


class StreamCollector(Collector):
    """Exports :func:`~django_sse.stats.get_stats` as ``django_sse_*`` metrics (see :doc:`/metrics`)."""

    def collect(self) -> Iterator[Metric]:
        """The metrics, read now."""
        stats = get_stats()
        streams = GaugeMetricFamily(
            "django_sse_streams", "Event streams being sent now, by view.", labels=["view"]
        )
        for name, count in sorted(stats.streaming.items()):
            streams.add_metric([name], count)
        yield streams
        yield GaugeMetricFamily(
            "django_sse_open_streams",
            "Event stream responses made and not yet closed (what MAX_STREAMS counts).",
            value=stats.open_streams,
        )
        yield GaugeMetricFamily(
            "django_sse_subscribed_streams", "Streams subscribed to channels now.", value=stats.subscribed
        )
        yield GaugeMetricFamily(
            "django_sse_sync_stream_threads", "Threads running sync streams now.", value=stats.sync_threads
        )
        yield CounterMetricFamily("django_sse_streams_opened", "Streams started.", value=stats.opened)
        closed = CounterMetricFamily(
            "django_sse_streams_closed", "Streams ended, by reason.", labels=["reason"]
        )
        for reason in CloseReason:
            closed.add_metric([reason.value], stats.closed.get(reason.value, 0))
        yield closed
        for name, documentation, value in (
            ("django_sse_events_sent", "Events handed to the server.", stats.events_sent),
            ("django_sse_sent_bytes", "Bytes handed to the server (heartbeats included).", stats.bytes_sent),
            ("django_sse_events_published", "Events published by this process.", stats.published),
            ("django_sse_replays", "Reconnections resumed from history.", stats.replays),
            ("django_sse_replayed_events", "Events sent by replays.", stats.replayed_events),
            ("django_sse_resets", "Reconnections that could not be resumed (reset event).", stats.resets),
            ("django_sse_streams_refused", "Streams refused with 503 (MAX_STREAMS).", stats.refused),
        ):
            yield CounterMetricFamily(name, documentation, value=value)
        latency = stats.publish_latency
        buckets, total = [], 0
        for bound, count in zip((*latency.bounds, float("inf")), latency.counts, strict=True):
            total += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), total))
        yield HistogramMetricFamily(
            "django_sse_publish_latency_seconds",
            "From publish() to the event in the first stream's buffer (events published here).",
            buckets=buckets,
            sum_value=latency.sum,
        )


def register(registry: CollectorRegistry = REGISTRY) -> None:
    """Register a :class:`StreamCollector` on ``registry`` (the default one); idempotent."""
    with _lock:
        if id(registry) in _registered:
            return
        registry.register(StreamCollector())
        _registered.add(id(registry))


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The default registry in Prometheus's text format: route it when no other view serves it.

    It is open to whoever can reach it, as metrics endpoints usually are: serve it on an
    internal address, or wrap it (``staff_member_required``, a token check) in your URLconf.
    """
    register()
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
