"""EventStreamView with channels, through Django's test client (history in the test database)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client, RequestFactory
from django.urls import path

from django_sse import Event, EventStreamView, history, publish
from django_sse.backends import get_backend
from django_sse.backends.embedded import EmbeddedBackend, StoredFeed
from django_sse.event import EventParser
from django_sse.models import StoredEvent
from django_sse.testing import aread_events, read_events, when_subscribed
from tests.sse_client import publish_when_subscribed, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class Room(EventStreamView):
    def get_channels(self, request, names):
        return names.split(",")

    def has_channel_permission(self, request, channel):
        return channel != "private"


class Snapshot(Room):
    def initial_events(self, request, *args, **kwargs):
        return [Event(event="snapshot", data=[1, 2])]

    def stream(self, request, *args, **kwargs):
        yield Event(event="hello", data="own")


class OwnIds(Room):
    def stream(self, request, *args, **kwargs):
        yield Event(data="x", id="7")


class Urls:
    urlpatterns = [
        path("room/<str:names>/", Room.as_view()),
        path("snapshot/<str:names>/", Snapshot.as_view()),
        path("own-ids/<str:names>/", OwnIds.as_view()),
        path("fixed/", Room.as_view(get_channels=lambda request: ["fixed"])),
    ]


@pytest.fixture(autouse=True)
def urls(settings):
    settings.ROOT_URLCONF = Urls
    settings.DJANGO_SSE = {"MAX_CHANNELS": 3, "POLL_INTERVAL": 0.1}


def test_live_events_from_publish():
    response = Client().get("/room/a/")
    publish_when_subscribed("a", ["one", "two"])
    assert [e.data for e in read_events(response, 2)] == ["one", "two"]


def test_async_client_and_aread_events():
    async def run():
        response = await AsyncClient().get("/room/a/")
        publish_when_subscribed("a", ["one"])
        return await aread_events(response, 1)

    assert [e.data for e in async_to_sync(run)()] == ["one"]


def test_replay_after_last_event_id_then_live():
    first = publish("a", "1")
    publish("b", "other channel")
    publish("a", "2")
    response = Client().get("/room/a/", headers={"Last-Event-ID": str(first.id)})
    publish_when_subscribed("a", ["3"])
    assert [e.data for e in read_events(response, 2)] == ["2", "3"]


def test_last_event_id_query_parameter():
    first = publish("a", "1")
    publish("a", "2")
    assert [e.data for e in read_events(Client().get(f"/room/a/?lastEventId={first.id}"), 1)] == ["2"]


@pytest.mark.parametrize("value", ["junk", "-1", "99999999999999999999"])
def test_malformed_last_event_id_gets_a_reset_event(value):
    [reset] = read_events(Client().get("/room/a/", headers={"Last-Event-ID": value}), 1)
    assert (reset.event, reset.data) == ("reset", '{"reason": "malformed"}')


def test_history_off_cannot_resume(settings):
    settings.DJANGO_SSE = {"HISTORY": False}
    [reset] = read_events(Client().get("/room/a/", headers={"Last-Event-ID": "3"}), 1)
    assert reset.data == '{"reason": "no history"}'


def test_fresh_connect_sends_position_without_an_event():
    published = publish("a", "before")
    response = Client().get("/room/a/")
    chunks = b"".join(chunk for _, chunk in zip(range(2), response, strict=False))
    response.close()
    assert chunks == f"retry: 3000\n\nid: {published.id}\n\n".encode()


def test_snapshot_before_live_and_own_events():
    response = Client().get("/snapshot/a/")
    # The live event is published once the client has the view's own one: published as soon as the
    # stream subscribes, it could come first (live and own events go out as they come).
    chunks, parser, events = iter(response), EventParser(), list[Event]()
    deadline = time.monotonic() + 10  # checked between chunks (heartbeats are chunks too)

    def read_until(count: int) -> None:
        while len(events) < count and time.monotonic() < deadline:
            events.extend(parser.feed(next(chunks)))

    read_until(2)
    publish("a", "live")
    read_until(3)
    response.close()
    assert [(e.event, e.data) for e in events] == [
        ("snapshot", "[1, 2]"),
        ("hello", "own"),
        ("message", "live"),
    ]


def test_own_event_with_an_id_is_refused():
    with pytest.raises(ValueError, match="must not have an id"):
        read_events(Client().get("/own-ids/a/"), 1)


def test_refusals():
    client = Client()
    forbidden = client.get("/room/a,private/")
    assert (forbidden.status_code, forbidden.content) == (403, b"You may not read channel 'private'.")
    assert forbidden["Content-Type"].startswith("text/plain")
    too_many = client.get("/room/a,b,c,d/")
    assert (too_many.status_code, too_many.content) == (400, b"Too many channels: 4, at most 3.")
    assert client.get("/room/a,b%20c/").status_code == 400
    # Repeated names count once.
    assert client.get("/room/a,a,a,a/").status_code == 200


def test_read_events_times_out():
    with pytest.raises(TimeoutError, match=r"0 of 1 events arrived within 0\.3 s"):
        read_events(Client().get("/room/quiet/"), 1, timeout=0.3)


class StrChannels(EventStreamView):
    channels = "chat"


class AsyncPermission(Room):
    async def has_channel_permission(self, request, channel):
        return False


class ListSnapshot(Room):
    def initial_events(self, request, *args, **kwargs):
        # A list, built when called: that must be after subscribing, or an event is lost.
        return [Event(event="snapshot", data=list(StoredEvent.objects.values_list("data", flat=True)))]


def test_channels_given_as_a_str_are_refused():
    with pytest.raises(TypeError, match="channels must be a list of names, not 'chat'"):
        async_to_sync(StrChannels.as_view())(RequestFactory().get("/"))


class AsyncHooks(EventStreamView):
    async def get_channels(self, request, names):
        return names.split(",")

    async def has_channel_permission(self, request, channel):
        return channel != "private"


class AwaitablePermission(Room):
    def has_channel_permission(self, request, channel):
        return AsyncHooks().has_channel_permission(request, channel)


def test_async_hooks_are_awaited():
    response = async_to_sync(AsyncHooks.as_view())(RequestFactory().get("/"), names="a,b")
    publish_when_subscribed("b", ["live"])
    assert [e.data for e in read_events(response, 1)] == ["live"]
    forbidden = async_to_sync(AsyncHooks.as_view())(RequestFactory().get("/"), names="a,private")
    assert forbidden.status_code == 403
    assert async_to_sync(AsyncPermission.as_view())(RequestFactory().get("/"), names="a").status_code == 403


def test_a_sync_permission_check_returning_an_awaitable_is_refused_not_taken_as_yes():
    with pytest.raises(TypeError, match="returned an awaitable: declare it with async def"):
        async_to_sync(AwaitablePermission.as_view())(RequestFactory().get("/"), names="a")


def test_snapshot_is_taken_after_subscribing():
    response = async_to_sync(ListSnapshot.as_view())(RequestFactory().get("/"), names="a")
    publish("a", "published after the view returned, before the stream was read")
    [snapshot] = read_events(response, 1)
    assert "published after" in snapshot.data


def test_a_new_channel_starts_from_now_while_other_channels_are_streamed():
    # A stream stays open on another channel, so the dispatcher keeps running meanwhile.
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(read_events, Client().get("/room/busy/"), 2)
        publish_when_subscribed("busy", ["tick"]).result(timeout=15)
        old = [publish("quiet", f"old {i}") for i in range(3)]
        # The dispatcher reads past them (nobody listens to "quiet" yet): its position, private.
        backend = get_backend()
        assert isinstance(backend, EmbeddedBackend) and isinstance(backend.feed, StoredFeed)
        dispatcher, newest = backend.feed.dispatcher, history.id_of(old[-1])
        assert wait_for(lambda: (dispatcher._position or 0) >= newest, timeout=10)
        response = Client().get("/room/quiet/")
        publish_when_subscribed("quiet", ["new"], streams=2)  # the busy stream and this one
        assert [e.data for e in read_events(response, 1)] == ["new"]
        publish("busy", "tock")
        assert [e.data for e in busy.result(timeout=10)] == ["tick", "tock"]


class Ticking(Room):
    def stream(self, request, *args, **kwargs):
        while True:
            time.sleep(0.05)  # the stream's own pacing, not a wait
            yield Event(event="tick", data="own")


def test_a_stream_with_its_own_events_still_ends_when_its_channels_end():
    # At shutdown (or for a slow client) the whole stream ends, so the client reconnects and replays,
    # rather than going on with its own events and never a channel event again.
    response = async_to_sync(Ticking.as_view())(RequestFactory().get("/"), names="a")
    when_subscribed(lambda: get_backend().close("bye"))
    with pytest.raises(AssertionError, match="the stream ended after"):
        read_events(response, 1000, timeout=10)


class MaybeNoChannels(EventStreamView):
    def get_channels(self, request, names):
        return [name for name in names.split(",") if name != "none"]


def test_no_channels_for_this_request_is_204_not_a_500():
    response = async_to_sync(MaybeNoChannels.as_view())(RequestFactory().get("/"), names="none")
    assert response.status_code == 204
    # A view with neither channels nor a stream() is a mistake, not a request without channels.
    with pytest.raises(NotImplementedError, match="must define a stream"):
        async_to_sync(EventStreamView.as_view())(RequestFactory().get("/"))
