"""Prometheus metrics scraped from real servers: django-prometheus's /metrics, and our own view."""

from __future__ import annotations

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import environment, start
from tests.sse_client import wait_for
from tests.streams_client import close_all, open_streams, read_until

SETTINGS = "tests.project.settings_prometheus"
VIEW = "tests.project.views.Channels"
CLIENTS = 3
EVENTS = 5

# Django's send loop (daphne), django_sse.asgi's (daphne-sse) and a WSGI server (gunicorn).
SERVERS = ["daphne", "daphne-sse", "gunicorn-gthread"]


def scrape(server, path: str = "/metrics") -> dict[tuple[str, tuple], float]:
    """Every django_sse_* sample: {(name, sorted labels): value}."""
    response = httpx.get(server.url(path), timeout=10)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name.startswith("django_sse_"):
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize("server_name", SERVERS)
def test_streams_deliveries_replays_and_closes_are_scraped(server_name):
    # Heartbeats often: a WSGI server notices a client has gone only when a write fails.
    env = {**environment(SETTINGS), "SSE_TEST_DJANGO_SSE": json.dumps({"HEARTBEAT": 0.5})}
    server = start(server_name, env=env)
    channel = f"metrics-{server_name}"
    sockets = []
    try:
        before = scrape(server)
        sockets = open_streams(server.port, f"/channels/{channel}/", CLIENTS)
        assert read_until(sockets, b"id:", timeout=15) == CLIENTS  # subscribed
        assert wait_for(lambda: value(scrape(server), "django_sse_streams", view=VIEW) == CLIENTS, timeout=10)

        ids = httpx.get(server.url(f"/publish/{channel}/?n={EVENTS}"), timeout=10).json()["ids"]
        assert read_until(sockets, f"id: {ids[-1]}\n".encode(), timeout=15) == CLIENTS
        after = scrape(server)
        delta = {key: after[key] - before.get(key, 0.0) for key in after}
        assert value(delta, "django_sse_events_published_total") == EVENTS
        assert value(delta, "django_sse_subscribed_streams") == CLIENTS
        # Each client: its first id, then the events (counted once handed to the server).
        assert value(delta, "django_sse_events_sent_total") >= CLIENTS * EVENTS
        assert value(delta, "django_sse_sent_bytes_total") > CLIENTS * EVENTS * len('data: {"seq": 0}')
        assert value(delta, "django_sse_streams_opened_total") == CLIENTS
        latency = value(delta, "django_sse_publish_latency_seconds_count")
        assert 1 <= latency <= EVENTS  # handed over by the publishing view itself, at least the first
        assert value(after, "django_sse_publish_latency_seconds_bucket", le="+Inf") == value(
            after, "django_sse_publish_latency_seconds_count"
        )

        close_all(sockets)
        sockets = []

        def all_left():
            samples = scrape(server)
            left = value(samples, "django_sse_streams_closed_total", reason="client_left")
            left -= value(before, "django_sse_streams_closed_total", reason="client_left")
            return value(samples, "django_sse_streams", view=VIEW) == 0 and left == CLIENTS

        assert wait_for(all_left, timeout=20)

        # A reconnection resumed from history, and one that cannot be (a reset).
        resumed = open_streams(
            server.port, f"/channels/{channel}/", 1, headers=f"Last-Event-ID: {ids[0]}\r\n"
        )
        reset = open_streams(server.port, f"/channels/{channel}/", 1, headers="Last-Event-ID: nonsense\r\n")
        sockets = resumed + reset
        assert read_until(resumed, f"id: {ids[-1]}\n".encode(), timeout=15) == 1
        assert read_until(reset, b"event: reset", timeout=15) == 1
        samples = scrape(server)
        assert value(samples, "django_sse_replays_total") - value(before, "django_sse_replays_total") == 1
        replayed = value(samples, "django_sse_replayed_events_total")
        assert replayed - value(before, "django_sse_replayed_events_total") == EVENTS - 1
        assert value(samples, "django_sse_resets_total") - value(before, "django_sse_resets_total") == 1

        # Our own view serves the same registry.
        ours = scrape(server, "/sse-metrics/")
        assert value(ours, "django_sse_events_published_total") == value(
            samples, "django_sse_events_published_total"
        )
    finally:
        close_all(sockets)
        server.stop()
