"""django_sse.testing as users' tests use it: read_events, aread_events, when_subscribed."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import async_to_sync
from django.http import HttpResponse
from django.test import AsyncClient, Client

from django_sse import Event, publish
from django_sse.stats import get_stats
from django_sse.testing import aread_events, read_events, when_subscribed
from tests.sse_client import wait_for


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_read_events_returns_what_a_browser_dispatches(kind):
    events = read_events(Client().get(f"/{kind}/?n=3&interval=0"), 3)
    assert [json.loads(e.data)["i"] for e in events] == [0, 1, 2]
    assert [(e.event, e.id) for e in events] == [("message", "0"), ("message", "1"), ("message", "2")]


def test_aread_events_with_the_async_client():
    async def run() -> list[Event]:
        return await aread_events(await AsyncClient().get("/async/?n=2&interval=0"), 2)

    assert [json.loads(e.data)["i"] for e in async_to_sync(run)()] == [0, 1]


def test_read_events_times_out_when_too_few_events_arrive():
    with pytest.raises(TimeoutError, match=r"1 of 2 events arrived within 0\.5 s"):
        read_events(Client().get("/sync/?n=-1&interval=2"), 2, timeout=0.5)


def test_read_events_says_when_the_stream_ends_early():
    with pytest.raises(AssertionError, match="the stream ended after 2 of 3 events"):
        read_events(Client().get("/async/?n=2&interval=0"), 3)


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_read_events_raises_what_the_stream_raised(kind):
    with pytest.raises(RuntimeError, match=f"boom in {kind} stream"):
        read_events(Client().get(f"/failing/{kind}/"), 2)


def test_read_events_refuses_a_response_that_is_no_event_stream():
    with pytest.raises(TypeError, match="Expected an EventStreamResponse, got HttpResponse"):
        read_events(HttpResponse("no"), 1)


@pytest.mark.django_db(transaction=True)
def test_when_subscribed_publishes_once_the_stream_listens():
    response = Client().get("/channels/news/")
    published = when_subscribed(lambda: publish("news", "live"))
    [event] = read_events(response, 1)
    assert (event.data, event.id) == ("live", published.result(timeout=5).id)


@pytest.mark.django_db(transaction=True)
def test_when_subscribed_waits_for_every_stream_it_is_told_of():
    first, second = Client().get("/channels/a/"), Client().get("/channels/a/")
    published = when_subscribed(lambda: publish("a", "to both"), streams=2)
    with ThreadPoolExecutor(1) as pool:
        reading = pool.submit(read_events, first, 1)
        assert wait_for(lambda: get_stats().subscribed == 1, timeout=5)
        assert not published.done()  # one stream of two: not yet
        [event] = read_events(second, 1)
        assert [e.data for e in reading.result(timeout=5)] == [event.data] == ["to both"]
    assert published.result(timeout=5).id == event.id


def test_when_subscribed_times_out_without_calling_the_action():
    called = []
    assert get_stats().subscribed == 0
    pending = when_subscribed(lambda: called.append(1), timeout=0.2)
    with pytest.raises(TimeoutError, match=r"0 of 1 streams subscribed within 0\.2 s"):
        pending.result(timeout=5)
    assert called == []


@pytest.mark.django_db(transaction=True)
def test_what_the_action_raises_is_the_futures():
    response = Client().get("/channels/news/")
    pending = when_subscribed(lambda: publish("news", None))  # publish() refuses data=None
    with pytest.raises(TimeoutError):
        read_events(response, 1, timeout=0.5)
    with pytest.raises(ValueError, match="publish\\(\\) needs data"):
        pending.result(timeout=5)
