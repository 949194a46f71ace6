"""The plain-Django streams of bench/latency.py: no django-sse import, so that ``settings_plain``
(django-sse not installed) can serve them."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse


def params(request: HttpRequest) -> tuple[int, float]:
    return int(request.GET.get("n", "200")), float(request.GET.get("interval", "0.02"))


def _raw(i: int) -> bytes:
    """An event encoded by hand, as a user without django-sse would."""
    return f"id: {i}\ndata: {json.dumps({'i': i, 't': time.time()})}\n\n".encode()


def ping(request: HttpRequest) -> HttpResponse:
    return HttpResponse("pong", content_type="text/plain")


def plain_sync(request: HttpRequest) -> StreamingHttpResponse:
    """A hand-built stream as in tutorials; under ASGI, Django collects a sync iterator into a list."""
    n, interval = params(request)

    def events() -> Iterator[bytes]:
        for i in range(n):
            yield _raw(i)
            time.sleep(interval)

    return StreamingHttpResponse(events(), content_type="text/event-stream")


def plain_async(request: HttpRequest) -> StreamingHttpResponse:
    """The same with an async generator: the best plain Django does under ASGI."""
    n, interval = params(request)

    async def events() -> AsyncIterator[bytes]:
        for i in range(n):
            yield _raw(i)
            await asyncio.sleep(interval)

    return StreamingHttpResponse(events(), content_type="text/event-stream")
