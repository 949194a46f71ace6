"""EventStreamView through Django's test clients (the full handler and middleware)."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client, RequestFactory

from django_sse import Event, EventStreamView


class Numbers(EventStreamView):
    def stream(self, request, *args, **kwargs):
        yield Event(data="1", event="number")
        yield 2


class AsyncNumbers(EventStreamView):
    async def stream(self, request, *args, **kwargs):
        yield Event(data="1", event="number")
        yield 2


@pytest.fixture
def urls(settings):
    from django.urls import path

    class Urls:
        urlpatterns = [
            path("sync/", Numbers.as_view()),
            path("async/", AsyncNumbers.as_view(retry=100, heartbeat=None)),
        ]

    settings.ROOT_URLCONF = Urls


EXPECTED = b"event: number\ndata: 1\n\ndata: 2\n\n"


@pytest.mark.usefixtures("urls")
def test_get_streams_sync_and_async_views():
    response = Client().get("/sync/", HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert not response.has_header("Content-Encoding")
    assert b"".join(response.streaming_content) == b"retry: 3000\n\n" + EXPECTED  # type: ignore[attr-defined]


@pytest.mark.usefixtures("urls")
def test_async_client_and_as_view_overrides():
    async def fetch():
        response = await AsyncClient().get("/async/", headers={"accept-encoding": "gzip"})
        return response, b"".join([c async for c in response.streaming_content])  # type: ignore[attr-defined]

    response, content = async_to_sync(fetch)()
    assert not response.has_header("Content-Encoding")
    assert content == b"retry: 100\n\n" + EXPECTED


@pytest.mark.usefixtures("urls")
@pytest.mark.parametrize("method", ["post", "put", "delete", "head", "options"])
def test_only_get_is_allowed(method):
    response = getattr(Client(), method)("/sync/")
    assert response.status_code == 405
    assert response["Allow"] == "GET"


def test_stream_must_be_implemented():
    with pytest.raises(NotImplementedError, match="must define a stream"):
        async_to_sync(EventStreamView.as_view())(RequestFactory().get("/"))


@pytest.mark.parametrize("returned", [42, "text", b"bytes", {"a": 1}, None])
def test_stream_must_be_a_generator_or_iterable_of_events(returned):
    class Broken(EventStreamView):
        def stream(self, request, *args, **kwargs):
            return returned

    with pytest.raises(TypeError, match=r"Broken.stream\(\) must be a generator"):
        async_to_sync(Broken.as_view())(RequestFactory().get("/"))


def test_url_kwargs_reach_stream():
    class Echo(EventStreamView):
        def stream(self, request, *args, **kwargs):
            yield kwargs

    response = async_to_sync(Echo.as_view(retry=None))(RequestFactory().get("/"), room="lobby")
    assert list(response)[1] == b'data: {"room": "lobby"}\n\n'


def test_a_url_keyword_named_like_a_parameter_of_ours_reaches_the_hooks():
    class Room(EventStreamView):
        def get_channels(self, request, name):
            return [f"room.{name}"]

        def stream(self, request, *args, **kwargs):
            yield kwargs

    response = async_to_sync(Room.as_view(retry=None))(RequestFactory().get("/"), name="lobby")
    assert response.status_code == 200
    response.close()
