"""Views the server tests stream from. Each event carries the server time it was yielded at."""

import asyncio
import collections
import threading
import time

from django.core.signals import request_finished, request_started
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from django_sse import Event, EventStreamView
from django_sse.bridge import THREAD_PREFIX

COUNTERS: collections.Counter[str] = collections.Counter()


def _count(name: str) -> None:
    COUNTERS[name] += 1


request_started.connect(lambda **kw: _count("request_started"), weak=False)
request_finished.connect(lambda **kw: _count("request_finished"), weak=False)


def _params(request: HttpRequest) -> tuple[int, float, float, str]:
    get = request.GET
    count = int(get.get("n", "5"))  # -1: endless
    return count, float(get.get("interval", "0.3")), float(get.get("first", "0")), get.get("token", "")


def _event(i: int) -> Event:
    return Event(data={"i": i, "t": time.time(), "thread": threading.current_thread().name}, id=str(i))


class SyncStream(EventStreamView):
    def stream(self, request, *args, **kwargs):
        count, interval, first, token = _params(request)
        try:
            time.sleep(first)
            i = 0
            while i != count:
                yield _event(i)
                i += 1
                time.sleep(interval)
        finally:
            _count(f"finally:{token}")


class AsyncStream(EventStreamView):
    async def stream(self, request, *args, **kwargs):
        count, interval, first, token = _params(request)
        try:
            await asyncio.sleep(first)
            i = 0
            while i != count:
                yield _event(i)
                i += 1
                await asyncio.sleep(interval)
        finally:
            _count(f"finally:{token}")


def plain_sync(request):
    """A hand-built stream, as in every tutorial: only the middleware makes it stream per event."""
    count, interval, first, token = _params(request)

    def gen():
        try:
            time.sleep(first)
            i = 0
            while i != count:
                yield _event(i).encode()
                i += 1
                time.sleep(interval)
        finally:
            _count(f"finally:{token}")

    return StreamingHttpResponse(gen(), content_type="text/event-stream")


def plain_async(request):
    count, interval, first, token = _params(request)

    async def gen():
        try:
            await asyncio.sleep(first)
            i = 0
            while i != count:
                yield _event(i).encode()
                i += 1
                await asyncio.sleep(interval)
        finally:
            _count(f"finally:{token}")

    return StreamingHttpResponse(gen(), content_type="text/event-stream")


def ping(request):
    return HttpResponse("pong", content_type="text/plain")


def stats(request):
    threads = [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]
    return JsonResponse({"counters": dict(COUNTERS), "sse_threads": threads})
