"""Fan-out bench views: one stream per client, and a publisher thread inside the server process.

- ``Feed``: django-sse, an ``EventStreamView`` on the ``bench`` channel; the publisher calls
  ``django_sse.publish()`` (stored in the database, then fanned out by the embedded backend's
  dispatcher thread).
- ``plain_feed``: the peer baseline, plain Django: an async generator awaiting an ``asyncio.Queue``
  of its own; the publisher encodes each event once and puts the bytes into every queue (one
  ``call_soon_threadsafe`` per event onto the server's event loop).

``POST /fanout/start/?kind=sse|plain&rate=R&count=N`` starts the publisher: a thread that publishes
N events, R per second, each ``{"seq": 1..N, "t": time.time()}``. Publishing from a thread of
the server process measures the fan-out, not the cost of an HTTP request per publish.
``GET /fanout/stats/?kind=...`` tells subscribers, progress, errors and django-sse's slow-client count.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from django_sse import EventStreamView, publish
from django_sse.backends import get_backend

CHANNEL = "bench"


class Feed(EventStreamView):
    channels = [CHANNEL]


# ------------------------------------------------------------------ baseline

_queues: set[asyncio.Queue[bytes]] = set()


async def plain_feed(request: HttpRequest) -> StreamingHttpResponse:
    """An async view (no thread hop) and an async generator per client, fed through its own queue."""

    async def events() -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        _queues.add(queue)
        try:
            yield b"retry: 3000\n\n"  # headers out at once (daphne waits for a body), as django-sse does
            while True:
                yield await queue.get()
        finally:
            _queues.discard(queue)

    return StreamingHttpResponse(events(), content_type="text/event-stream")


def _fan_out(chunk: bytes) -> None:
    for queue in _queues:
        queue.put_nowait(chunk)


# ----------------------------------------------------------------- publisher


class _Publisher:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = False
        self.published = 0
        self.error = ""
        self.publish_seconds = 0.0  # wall time spent inside send(), e.g. publish()'s database write

    def start(self, send: Callable[[dict[str, Any]], None], rate: float, count: int) -> bool:
        with self.lock:
            if self.running:
                return False
            self.running, self.published, self.error, self.publish_seconds = True, 0, "", 0.0
        threading.Thread(
            target=self._run, args=(send, rate, count), name="bench-publisher", daemon=True
        ).start()
        return True

    def _run(self, send: Callable[[dict[str, Any]], None], rate: float, count: int) -> None:
        start = time.monotonic()
        try:
            for seq in range(1, count + 1):
                delay = start + (seq - 1) / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                before = time.perf_counter()
                send({"seq": seq, "t": time.time()})
                self.publish_seconds += time.perf_counter() - before
                self.published = seq
        except Exception as exc:
            self.error = repr(exc)
        finally:
            self.running = False
            connections.close_all()


_publisher = _Publisher()


def _sse_sender() -> Callable[[dict[str, Any]], None]:
    def send(payload: dict[str, Any]) -> None:
        publish(CHANNEL, payload)

    return send


def _plain_sender(loop: asyncio.AbstractEventLoop) -> Callable[[dict[str, Any]], None]:
    def send(payload: dict[str, Any]) -> None:
        chunk = f"id: {payload['seq']}\ndata: {json.dumps(payload)}\n\n".encode()  # encoded once
        loop.call_soon_threadsafe(_fan_out, chunk)

    return send


async def start(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponse(status=405)
    kind = request.GET.get("kind", "")
    rate, count = float(request.GET.get("rate", "10")), int(request.GET.get("count", "200"))
    if kind not in ("sse", "plain") or rate <= 0 or count < 1:
        return HttpResponse("kind=sse|plain, rate > 0, count >= 1", status=400, content_type="text/plain")
    send = _sse_sender() if kind == "sse" else _plain_sender(asyncio.get_running_loop())
    if not _publisher.start(send, rate, count):
        return HttpResponse("a publisher is running already", status=409, content_type="text/plain")
    return JsonResponse({"started": count}, status=202)


async def stats(request: HttpRequest) -> JsonResponse:
    """Runs on the server's event loop, so that reading ``_queues`` is safe."""
    data: dict[str, Any] = {
        "running": _publisher.running,
        "published": _publisher.published,
        "error": _publisher.error,
        "publish_seconds": _publisher.publish_seconds,
    }
    if request.GET.get("kind") == "sse":
        hub = get_backend().hub
        data.update(subscribers=len(hub), slow_clients=hub.slow_clients)
    else:
        data.update(subscribers=len(_queues), slow_clients=0)
    return JsonResponse(data)
