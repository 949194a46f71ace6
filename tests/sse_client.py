"""What a client sees of a stream, with the time each part arrived."""

from __future__ import annotations

import json
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
from httpx_sse import EventSource, ServerSentEvent

if TYPE_CHECKING:
    from django_sse import Event

#: The streams of the test project: EventStreamView.stream() sync or async, and hand-built
#: StreamingHttpResponses (sync or async) that only the middleware makes stream per event.
MODES = ["sync", "async", "plain/sync", "plain/async"]
INTERVAL = 0.3  # seconds between yields in the delivery tests
MAX_LAG = 0.15  # an event must arrive within this of its yield

# What a browser sends, so that GZip would compress if nothing stopped it.
BROWSER_HEADERS = {"Accept": "text/event-stream", "Accept-Encoding": "gzip, deflate, br"}


@dataclass
class Received:
    headers: httpx.Headers
    status: int
    started: float  # when the request was sent
    headers_at: float  # when the response headers arrived
    events: list[tuple[float, ServerSentEvent]] = field(default_factory=list)

    def data(self) -> list[dict]:
        return [json.loads(sse.data) for _, sse in self.events]


def read_events(url: str, count: int, *, timeout: float = 15.0, headers: dict | None = None) -> Received:
    """Read ``count`` events (fewer if the stream ends), recording arrival times; then disconnect."""
    with httpx.Client(timeout=timeout) as client:
        started = time.time()
        with client.stream("GET", url, headers={**BROWSER_HEADERS, **(headers or {})}) as response:
            received = Received(response.headers, response.status_code, started, time.time())
            for sse in EventSource(response).iter_sse():
                if sse.data == "" and sse.event == "message":
                    continue  # the retry:/comment preamble, which a browser does not dispatch either
                received.events.append((time.time(), sse))
                if len(received.events) >= count:
                    break
    return received


def first_chunk_delay(url: str, *, timeout: float = 15.0) -> tuple[float, float, bytes]:
    """Seconds until the headers and until the first body bytes arrive, and those bytes."""
    with httpx.Client(timeout=timeout) as client:
        started = time.time()
        with client.stream("GET", url, headers=BROWSER_HEADERS) as response:
            headers_at = time.time()
            chunk = next(response.iter_raw())
            return headers_at - started, time.time() - started, chunk


def wait_for(predicate, *, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def assert_each_event_arrived_when_yielded(received: Received, count: int) -> None:
    """Events 0..count-1 arrived in order, each within MAX_LAG of its yield and before the next yield."""
    data = received.data()
    assert [d["i"] for d in data] == list(range(count))
    for i, (arrived, _) in enumerate(received.events):
        lag = arrived - data[i]["t"]
        assert lag < MAX_LAG, f"event {i} arrived {lag:.3f} s after it was yielded"
        if i + 1 < len(data):
            assert arrived < data[i + 1]["t"], f"event {i} arrived only after event {i + 1} was yielded"


def publish_when_subscribed(channel: str, values: list[str], *, streams: int = 1) -> Future[list[Event]]:
    """Publish ``values`` to ``channel``, in order, once ``streams`` streams are subscribed."""
    from django_sse import publish
    from django_sse.testing import when_subscribed

    return when_subscribed(lambda: [publish(channel, value) for value in values], streams=streams)
