"""EventStreamResponse, iterated the way WSGI (__iter__) and ASGI (__aiter__) servers do."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import aclosing

import pytest
from django.http import StreamingHttpResponse

from django_sse import Event, EventStreamResponse
from django_sse.delivery.hub import Delivery
from django_sse.event import HEARTBEAT


def deliver(hub, pairs):
    """hub.deliver() of (channel, event) pairs, each event's position being its id."""
    hub.deliver([Delivery(channel, None if e.id is None else int(e.id), e) for channel, e in pairs])


def sync_events(n=3, delay=0.0, closed=None):
    try:
        for i in range(n):
            time.sleep(delay)
            yield Event(data=str(i), id=str(i))
    finally:
        if closed is not None:
            closed.set()


async def async_events(n=3, delay=0.0, closed=None):
    try:
        for i in range(n):
            await asyncio.sleep(delay)
            yield Event(data=str(i), id=str(i))
    finally:
        if closed is not None:
            closed.set()


async def collect_async(response):
    return [chunk async for chunk in response]


EXPECTED = [b"retry: 3000\n\n", b"id: 0\ndata: 0\n\n", b"id: 1\ndata: 1\n\n", b"id: 2\ndata: 2\n\n"]


@pytest.mark.parametrize("make", [sync_events, async_events])
def test_wsgi_iteration(make):
    assert list(EventStreamResponse(make())) == EXPECTED


@pytest.mark.parametrize("make", [sync_events, async_events])
def test_asgi_iteration(make):
    assert asyncio.run(collect_async(EventStreamResponse(make()))) == EXPECTED


def test_headers():
    response = EventStreamResponse(sync_events())
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    assert response["X-Accel-Buffering"] == "no"
    assert not response.has_header("Content-Length")
    assert response.status_code == 200


def test_status_and_extra_headers_and_own_cache_control():
    response = EventStreamResponse([], status=201, headers={"Cache-Control": "no-store", "X-Extra": "1"})
    assert (response.status_code, response["Cache-Control"], response["X-Extra"]) == (201, "no-store", "1")


def test_retry_from_settings_and_overrides(settings):
    settings.DJANGO_SSE = {"RETRY": 500}
    assert list(EventStreamResponse([])) == [b"retry: 500\n\n"]
    assert list(EventStreamResponse([], retry=10)) == [b"retry: 10\n\n"]
    # No retry: a comment still goes out at once, so the client sees the stream open.
    assert list(EventStreamResponse([], retry=None)) == [b":\n\n"]


def test_plain_values_become_data_events():
    chunks = list(EventStreamResponse(["hi", {"a": 1}], retry=None))
    assert chunks[1:] == [b"data: hi\n\n", b'data: {"a": 1}\n\n']


@pytest.mark.parametrize("make", [sync_events, async_events])
@pytest.mark.parametrize("mode", ["wsgi", "asgi"])
def test_heartbeat_while_idle_keeps_the_item_in_progress(make, mode):
    response = EventStreamResponse(make(n=2, delay=0.35), heartbeat=0.1)
    chunks = list(response) if mode == "wsgi" else asyncio.run(collect_async(response))
    events = [c for c in chunks if c != HEARTBEAT]
    assert events == EXPECTED[:3]  # nothing lost or repeated across heartbeats
    first, second = chunks.index(EXPECTED[1]), chunks.index(EXPECTED[2])
    assert chunks[1:first].count(HEARTBEAT) >= 2
    assert chunks[first + 1 : second].count(HEARTBEAT) >= 2


def test_no_heartbeat_when_disabled():
    assert HEARTBEAT not in list(EventStreamResponse(sync_events(n=1, delay=0.2), heartbeat=None))


def failing_sync():
    yield "ok"
    raise KeyError("boom")


async def failing_async():
    yield "ok"
    raise KeyError("boom")


@pytest.mark.parametrize("make", [failing_sync, failing_async])
def test_an_error_in_the_generator_is_logged_once_and_ends_the_stream(make, caplog):
    # Ending (not raising to the server) is what lets EventSource reconnect: daphne would leave a
    # response whose application raised open and silent.
    for chunks in (
        list(EventStreamResponse(make())),
        asyncio.run(collect_async(EventStreamResponse(make()))),
    ):
        assert chunks[-1].endswith(b"data: ok\n\n")
    failures = [r for r in caplog.records if "the stream of EventStreamResponse failed" in r.getMessage()]
    assert len(failures) == 2
    assert all(isinstance(r.exc_info[1], KeyError) for r in failures if r.exc_info)


@pytest.mark.django_db  # close() sends request_finished, which looks at database connections
@pytest.mark.parametrize("make", [sync_events, async_events])
def test_wsgi_close_closes_the_generator(make):
    closed = threading.Event()
    response = EventStreamResponse(make(n=100, delay=0.01, closed=closed))
    chunks = iter(response)
    next(chunks), next(chunks)
    response.close()  # what a WSGI server does when the client has gone
    assert closed.wait(5)


@pytest.mark.parametrize("make", [sync_events, async_events])
def test_asgi_aclose_closes_the_generator(make):
    closed = threading.Event()

    async def run():
        chunks = aiter(EventStreamResponse(make(n=100, delay=0.01, closed=closed)))
        await anext(chunks), await anext(chunks)
        await chunks.aclose()  # what Django's ASGI handler does when the client has gone

    asyncio.run(run())
    assert closed.wait(5)


def test_sync_generator_under_asgi_never_triggers_djangos_collect_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(collect_async(EventStreamResponse(sync_events())))
        ours = [str(w.message) for w in caught]
        # The control: Django's own response with the same generator does warn.
        asyncio.run(collect_async(StreamingHttpResponse(sync_events())))
    assert not any("must consume" in m for m in ours)
    assert any("must consume synchronous iterators" in str(w.message) for w in caught)


def test_adopt_keeps_status_headers_and_cookies():
    original = StreamingHttpResponse(iter([b"data: a\n\n"]), content_type="text/event-stream", status=202)
    original["X-Custom"] = "yes"
    original.set_cookie("seen", "1")
    adopted = EventStreamResponse.adopt(original)
    assert (adopted.status_code, adopted["X-Custom"], adopted.cookies["seen"].value) == (202, "yes", "1")
    assert adopted["X-Accel-Buffering"] == "no"
    assert list(adopted) == [b":\n\n", b"data: a\n\n"]


def test_getvalue_is_refused():
    with pytest.raises(AttributeError, match="never end"):
        EventStreamResponse([]).getvalue()


def test_wrapping_middleware_still_gets_a_stream():
    response = EventStreamResponse(["a"], retry=None)
    chunks = response.streaming_content
    assert isinstance(chunks, Iterator)
    response.streaming_content = (chunk.upper() for chunk in chunks)
    assert list(response) == [b":\n\n", b"DATA: A\n\n"]


@pytest.mark.parametrize("heartbeat", [None, 0.1])
def test_asgi_disconnect_mid_item_closes_the_async_generator_at_once(heartbeat):
    # Django's ASGI handler cancels the task that sends the response when the client leaves.
    async def run():
        closed = asyncio.Event()

        mid_item = asyncio.Event()

        async def events():
            try:
                yield "first"
                mid_item.set()
                await asyncio.sleep(30)  # the item in progress when the client leaves
                yield "never"
            finally:
                closed.set()

        async def serve():
            async with aclosing(aiter(EventStreamResponse(events(), heartbeat=heartbeat))) as chunks:
                async for _ in chunks:
                    pass

        task = asyncio.create_task(serve())
        await asyncio.wait_for(mid_item.wait(), 5)
        task.cancel()
        await asyncio.wait_for(closed.wait(), 1)

    asyncio.run(run())


@pytest.fixture
def channels_without_history(settings, monkeypatch):
    from django_sse.delivery import shutdown

    settings.DJANGO_SSE = {"HISTORY": False, "CLIENT_BUFFER": 5}
    monkeypatch.setattr(shutdown, "install", lambda: None)  # no signal handlers in the test process


def channel_response(heartbeat=None):
    from django_sse.delivery.channel_stream import ChannelStream

    stream = ChannelStream(["a"], None, own=None, initial=None, reset_event="reset")
    return EventStreamResponse(stream, retry=None, heartbeat=heartbeat)


@pytest.mark.usefixtures("channels_without_history")
def test_channel_events_waiting_together_go_out_in_one_chunk_without_those_sent_already():
    from django_sse.backends import get_backend

    async def run():
        backend = get_backend()
        backend.publish("a", Event(data="before"))  # id 1: the new stream starts after it
        chunks = aiter(channel_response())
        assert [await anext(chunks), await anext(chunks)] == [b":\n\n", b"id: 1\n\n"]
        events = [Event(data=d, id=i) for d, i in [("old", "1"), ("x", "2"), ("y", "3")]]
        deliver(backend.hub, [("a", event) for event in events])
        chunk = await anext(chunks)
        await chunks.aclose()
        return chunk

    assert asyncio.run(run()) == b"id: 2\ndata: x\n\nid: 3\ndata: y\n\n"


@pytest.mark.usefixtures("channels_without_history")
def test_channel_stream_heartbeats_while_idle_and_ends_when_the_client_falls_behind():
    from django_sse.backends import get_backend

    async def run():
        backend = get_backend()
        chunks = aiter(channel_response(heartbeat=0.1))
        head = [await anext(chunks), await anext(chunks)]
        idle = [await anext(chunks), await anext(chunks)]
        backend.publish("a", Event(data="live"))
        live = await anext(chunks)
        for i in range(6):  # more than CLIENT_BUFFER while the stream is not read
            backend.publish("a", Event(data=str(i)))
        for _ in range(100):  # the hub hands them over on the loop: until it drops the stream
            if not len(backend.hub):
                break
            await asyncio.sleep(0.01)
        rest = [chunk async for chunk in chunks]
        return head, idle, live, rest, backend.hub.slow_clients, len(backend.hub)

    head, idle, live, rest, slow_clients, subscribers = asyncio.run(run())
    assert head == [b":\n\n", b"id: 0\n\n"]
    assert idle == [HEARTBEAT, HEARTBEAT]
    assert live == b"id: 1\ndata: live\n\n"
    assert (rest, slow_clients, subscribers) == ([], 1, 0)
