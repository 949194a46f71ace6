"""Streams of ``n`` events ``interval`` seconds apart; each carries the server's time.time() at yield."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from django_sse import Event, EventStreamView


def _params(request: HttpRequest) -> tuple[int, float]:
    return int(request.GET.get("n", "200")), float(request.GET.get("interval", "0.02"))


def _event(i: int) -> Event:
    return Event(data={"i": i, "t": time.time()}, id=str(i))


def _raw(i: int) -> bytes:
    """The same event, encoded by hand as a user without django-sse would."""
    return f"id: {i}\ndata: {json.dumps({'i': i, 't': time.time()})}\n\n".encode()


def ping(request: HttpRequest) -> HttpResponse:
    return HttpResponse("pong", content_type="text/plain")


class SyncStream(EventStreamView):
    def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Iterator[Event]:
        n, interval = _params(request)
        for i in range(n):
            yield _event(i)
            time.sleep(interval)


class AsyncStream(EventStreamView):
    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Event]:
        n, interval = _params(request)
        for i in range(n):
            yield _event(i)
            await asyncio.sleep(interval)


def plain_sync(request: HttpRequest) -> StreamingHttpResponse:
    """A hand-built stream as in tutorials; under ASGI, Django collects a sync iterator into a list."""
    n, interval = _params(request)

    def events() -> Iterator[bytes]:
        for i in range(n):
            yield _raw(i)
            time.sleep(interval)

    return StreamingHttpResponse(events(), content_type="text/event-stream")


def plain_async(request: HttpRequest) -> StreamingHttpResponse:
    """The same with an async generator: the best plain Django does under ASGI."""
    n, interval = _params(request)

    async def events() -> AsyncIterator[bytes]:
        for i in range(n):
            yield _raw(i)
            await asyncio.sleep(interval)

    return StreamingHttpResponse(events(), content_type="text/event-stream")
