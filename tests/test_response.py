"""EventStreamResponse, iterated the way WSGI (__iter__) and ASGI (__aiter__) servers do."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import Iterator

import pytest
from django.http import StreamingHttpResponse

from django_sse import Event, EventStreamResponse
from django_sse.event import HEARTBEAT


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
def test_errors_in_the_generator_propagate_to_the_server(make):
    with pytest.raises(KeyError):
        list(EventStreamResponse(make()))
    with pytest.raises(KeyError):
        asyncio.run(collect_async(EventStreamResponse(make())))


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
