"""The plain-Django views of bench/streams.py: no django-sse import, so that ``settings_streams_plain``
and ``settings_streams_bare`` (django-sse not installed) can serve them.

- ``room``: the peers' way to hold a stream open: an async view returning
  ``StreamingHttpResponse(gen(), content_type="text/event-stream")``, where ``gen()`` yields a comment
  at once (headers out; daphne sends none before a body) and then awaits an ``asyncio.Queue`` of its
  own, registered in a module-level set.
- ``publish``: ``POST /streams/publish/?seq=N`` encodes ``{"seq": N, "t": time.time()}`` once and puts
  it into every queue (an async view: it runs on the server's loop, as the queues do).
- ``fast``: one stream as fast as Django sends it: an async generator yielding ``FAST_EVENT`` back
  to back, with no await between yields. Nothing else in the process runs while the server's
  ``send()`` does not wait (uvicorn waits only when the socket is full; daphne never does).
- ``fast_sleep0``: the same with ``await asyncio.sleep(0)`` after every yield, the plain fix for that.
- ``first``: one such event at once, then nothing (the time to the first event is measured on it).
- ``stats``: open streams (registered queues).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

#: The 100-byte event of the ``fast`` streams, encoded by hand: ``data: xxx...\n\n``.
FAST_DATA = "x" * 92
FAST_EVENT = f"data: {FAST_DATA}\n\n".encode()
assert len(FAST_EVENT) == 100

_queues: set[asyncio.Queue[bytes]] = set()


async def room(request: HttpRequest, name: str) -> StreamingHttpResponse:
    async def events() -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        _queues.add(queue)
        try:
            yield b": open\n\n"
            while True:
                yield await queue.get()
        finally:
            _queues.discard(queue)

    return StreamingHttpResponse(events(), content_type="text/event-stream")


@csrf_exempt
async def publish(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponse(status=405)
    seq = int(request.GET.get("seq", "1"))
    chunk = f"data: {json.dumps({'seq': seq, 't': time.time()})}\n\n".encode()  # encoded once
    for queue in _queues:
        queue.put_nowait(chunk)
    return JsonResponse({"streams": len(_queues)})


async def fast(request: HttpRequest) -> StreamingHttpResponse:
    async def events() -> AsyncIterator[bytes]:
        while True:
            yield FAST_EVENT

    return StreamingHttpResponse(events(), content_type="text/event-stream")


async def fast_sleep0(request: HttpRequest) -> StreamingHttpResponse:
    async def events() -> AsyncIterator[bytes]:
        while True:
            yield FAST_EVENT
            await asyncio.sleep(0)

    return StreamingHttpResponse(events(), content_type="text/event-stream")


async def stats(request: HttpRequest) -> JsonResponse:
    """Runs on the server's event loop, so that reading ``_queues`` is safe."""
    return JsonResponse({"subscribers": len(_queues)})


async def first(request: HttpRequest) -> StreamingHttpResponse:
    """One event at once, then nothing: what the time to a stream's first event is measured on."""

    async def events() -> AsyncIterator[bytes]:
        yield FAST_EVENT
        await asyncio.sleep(3600)

    return StreamingHttpResponse(events(), content_type="text/event-stream")
