"""django_sse.stats and django_sse.signals: what a stream did and why it ended, as receivers see it."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading

import pytest
from asgiref.sync import async_to_sync
from django.test import RequestFactory
from django.urls import path

from django_sse import Event, EventStreamResponse, EventStreamView, publish, revoke
from django_sse.backends import close_backend, get_backend
from django_sse.delivery.hub import Unavailable
from django_sse.signals import event_published, stream_closed, stream_opened
from django_sse.stats import CloseReason, get_stats, reset_stats
from tests.sse_client import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class Two(EventStreamView):
    retry = None
    heartbeat = None

    def stream(self, request):
        yield Event(data="one", event="n")
        yield Event(data="two", event="n")


class Endless(EventStreamView):
    heartbeat = None

    async def stream(self, request):
        n = 0
        while True:
            yield {"n": n}
            n += 1
            await asyncio.sleep(0.01)


class Failing(EventStreamView):
    def stream(self, request):
        yield "before"
        raise RuntimeError("boom")


class Room(EventStreamView):
    heartbeat = None

    def get_channels(self, request, names):
        return names.split(",")

    def get_revocation_keys(self, request, names):
        return ["room-key"]


def sync_stream(request):
    return EventStreamResponse(iter(["a", "b"]))


class Urls:
    urlpatterns = [
        path("two/", Two.as_view()),
        path("endless/", Endless.as_view()),
        path("failing/", Failing.as_view()),
        path("room/<str:names>/", Room.as_view()),
        path("bare/", sync_stream),
    ]


@pytest.fixture(autouse=True)
def urls(settings):
    settings.ROOT_URLCONF = Urls
    settings.DJANGO_SSE = {"POLL_INTERVAL": 0.1, "CLIENT_BUFFER": 3}
    gc.collect()  # streams other tests dropped unclosed end now, not during this test
    reset_stats()


class Seen:
    """Every stream_opened / stream_closed, as a receiver gets it."""

    def __init__(self) -> None:
        self.opened: list[dict] = []
        self.closed: list[dict] = []
        stream_opened.connect(self._opened)
        stream_closed.connect(self._closed)

    def _opened(self, sender, **kwargs):
        self.opened.append({"sender": sender, **kwargs})

    def _closed(self, sender, **kwargs):
        self.closed.append({"sender": sender, **kwargs})

    def disconnect(self) -> None:
        stream_opened.disconnect(self._opened)
        stream_closed.disconnect(self._closed)


@pytest.fixture
def seen():
    receiver = Seen()
    yield receiver
    receiver.disconnect()


VIEWS = {
    "two": Two.as_view(),
    "endless": Endless.as_view(),
    "failing": Failing.as_view(),
    "room": Room.as_view(),
}


def get(name: str, *, headers: dict[str, str] | None = None, **kwargs):
    """The view's response, as a WSGI server gets it (iterated, then closed)."""
    request = RequestFactory().get(f"/{name}/", headers=headers)
    return async_to_sync(VIEWS[name])(request, **kwargs)


def body_of(response) -> bytes:
    try:
        return b"".join(response)
    finally:
        response.close()


def test_a_stream_that_ends_reports_its_events_bytes_and_reason(seen):
    response = get("two")
    body = body_of(response)
    assert body.count(b"event: n") == 2
    [opened] = seen.opened
    assert opened["sender"] is Two
    assert opened["name"] == "tests.test_stats.Two"
    assert opened["channels"] == ()
    assert opened["request"].path == "/two/"
    [closed] = seen.closed
    assert closed["reason"] == "ended" and isinstance(closed["reason"], CloseReason)
    assert closed["events"] == 2
    assert closed["bytes"] == len(body)
    assert closed["duration"] >= 0
    stats = get_stats()
    assert stats.opened == 1 and stats.closed == {"ended": 1}
    assert stats.events_sent == 2 and stats.bytes_sent == len(body)
    assert "tests.test_stats.Two" not in stats.streaming


def test_a_client_that_leaves_is_client_left_and_is_counted_while_open(seen):
    response = get("endless")
    chunks = iter(response)
    first = [next(chunks) for _ in range(4)]  # the preamble and three events
    stats = get_stats()
    assert stats.streaming["tests.test_stats.Endless"] == 1
    assert stats.events_sent == 3 and stats.bytes_sent == sum(map(len, first))
    chunks.close()  # what a WSGI server does when the client has gone
    response.close()
    [closed] = seen.closed
    assert closed["reason"] == "client_left" and closed["events"] == 3
    assert "tests.test_stats.Endless" not in get_stats().streaming
    assert get_stats().closed == {"client_left": 1}


def test_a_failing_stream_is_error(seen, caplog):
    with caplog.at_level(logging.ERROR, "django_sse"):
        body_of(get("failing"))
    assert [c["reason"] for c in seen.closed] == ["error"]
    assert seen.closed[0]["events"] == 1
    assert "failed" in caplog.text


def test_a_bare_response_is_sent_by_its_class(seen):
    body_of(sync_stream(RequestFactory().get("/bare/")))
    assert [o["sender"] for o in seen.opened] == [EventStreamResponse]
    assert seen.opened[0]["name"] == "EventStreamResponse" and seen.opened[0]["request"] is None
    assert [(c["reason"], c["events"]) for c in seen.closed] == [("ended", 2)]


def test_a_sync_stream_past_the_thread_limit_is_limit(seen, settings):
    settings.DJANGO_SSE = {"MAX_SYNC_STREAMS": 1}
    release = threading.Event()

    def blocking():
        yield "x"
        release.wait(10)

    blocked = EventStreamResponse(blocking())
    running = iter(blocked)
    try:
        next(running), next(running)  # preamble, "x": the one sync thread is taken
        # A response made without the view's check (which answers 503 first).
        assert body_of(EventStreamResponse(iter(["y"]))).startswith(b"retry:")
        assert seen.closed[-1]["reason"] == "limit"
    finally:
        release.set()
        blocked.close()


def channel_stream(names: str, **headers: str):
    response = get("room", headers=headers, names=names)
    chunks = iter(response)
    next(chunks)  # the preamble
    next(chunks)  # the id: the stream is subscribed
    return response, chunks


def test_channel_streams_report_their_channels_and_why_the_backend_ended_them(seen):
    reasons = []
    for end in ("revoke", "shutdown", "unavailable"):
        response, chunks = channel_stream("a,b")
        assert seen.opened[-1]["channels"] == ("a", "b")
        publish("a", {"n": 1})
        assert b'"n": 1' in next(chunks)
        if end == "revoke":
            revoke(key="room-key")
        elif end == "shutdown":
            close_backend("server shutting down")
        else:
            get_backend().hub.close_all("test outage", Unavailable)
        rest = list(chunks)  # the stream ends by itself
        assert rest == []
        response.close()
        reasons.append((seen.closed[-1]["reason"], seen.closed[-1]["events"]))
    assert reasons == [("revoked", 2), ("shutdown", 2), ("unavailable", 2)]


def test_a_slow_client_is_slow_client(seen):
    response, chunks = channel_stream("slow")
    for n in range(5):  # CLIENT_BUFFER is 3, and nobody reads
        publish("slow", {"n": n})
    assert wait_for(lambda: get_backend().hub.slow_clients >= 1, timeout=5)
    list(chunks)
    response.close()
    assert seen.closed[-1]["reason"] == "slow_client"
    assert get_stats().closed == {"slow_client": 1}


def test_replays_resets_published_and_latency_are_counted(settings):
    settings.DJANGO_SSE = {"POLL_INTERVAL": 60}  # the dispatcher looks only when woken
    response, chunks = channel_stream("r")
    first = publish("r", {"n": 1})
    next(chunks)
    publish("r", {"n": 2})
    next(chunks)
    chunks.close()
    response.close()
    stats = get_stats()
    assert stats.published == 2
    # Counted when the publishing thread hands the event over itself (the first, at least: the
    # dispatcher, woken by it, may read the second back first).
    assert 1 <= stats.publish_latency.count <= 2 and 0 < stats.publish_latency.sum < 5

    response = get("room", headers={"last-event-id": str(first.id)}, names="r")
    chunks = iter(response)
    next(chunks)  # the preamble
    assert b'"n": 2' in next(chunks)  # the replay
    chunks.close()
    response.close()
    response = get("room", headers={"last-event-id": "not-a-number"}, names="r")
    chunks = iter(response)
    next(chunks)
    assert b"event: reset" in next(chunks)
    chunks.close()
    response.close()
    stats = get_stats()
    assert (stats.replays, stats.replayed_events, stats.resets) == (1, 1, 1)


def test_event_published_is_sent_with_the_stored_event():
    got = []

    def receiver(sender, channel, event, **kwargs):
        got.append((sender, channel, event))

    event_published.connect(receiver)
    try:
        event = publish("news", {"x": 1}, event="story")
    finally:
        event_published.disconnect(receiver)
    assert got == [(type(get_backend()), "news", event)]
    assert event.id is not None


def test_a_failing_receiver_is_logged_and_fails_nothing(seen, caplog):
    def broken(sender, **kwargs):
        raise ValueError("receiver bug")

    event_published.connect(broken)
    stream_closed.connect(broken)
    try:
        with caplog.at_level(logging.ERROR):
            assert publish("news", {"x": 1}).id is not None
            assert body_of(get("two")).count(b"event: n") == 2
    finally:
        event_published.disconnect(broken)
        stream_closed.disconnect(broken)
    failures = [r for r in caplog.records if "receiver bug" in r.getMessage()]
    assert len(failures) == 2
    assert [c["reason"] for c in seen.closed] == ["ended"]


def test_async_streams_send_to_async_and_sync_receivers_without_blocking():
    async_to_sync(async_receivers)()


async def async_receivers():
    got: list[tuple[str, str]] = []
    done = asyncio.Event()

    async def on_close(sender, reason, **kwargs):
        got.append(("async", reason))
        done.set()

    sync_done = threading.Event()

    def on_close_sync(sender, reason, **kwargs):
        got.append(("sync", reason))
        sync_done.set()

    stream_closed.connect(on_close)
    stream_closed.connect(on_close_sync)
    try:
        response = await VIEWS["two"](RequestFactory().get("/two/"))  # as an ASGI server gets it
        body = b"".join([chunk async for chunk in response])
        assert body.count(b"event: n") == 2
        await asyncio.wait_for(done.wait(), 5)
        # The sync receiver runs on Django's thread for sync code: wait for it there, bounded.
        assert await asyncio.to_thread(sync_done.wait, 5)
    finally:
        stream_closed.disconnect(on_close)
        stream_closed.disconnect(on_close_sync)
    assert sorted(got) == [("async", "ended"), ("sync", "ended")]
