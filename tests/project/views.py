"""Views the server tests stream from. Each event carries the server time it was yielded at."""

import asyncio
import collections
import os
import threading
import time

from django.core.signals import request_finished, request_started
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from django_sse import Event, EventStreamView, limits, publish
from django_sse.backends import get_backend
from django_sse.delivery.bridge import THREAD_PREFIX

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
    # Threads of streams; the dispatcher is one per process, started with the first channel stream.
    stream_threads = (f"{THREAD_PREFIX}-sync", f"{THREAD_PREFIX}-async")
    threads = [t.name for t in threading.enumerate() if t.name in stream_threads]
    return JsonResponse({"counters": dict(COUNTERS), "sse_threads": threads})


# Channels


class Channels(EventStreamView):
    """Streams the comma-separated channels in the URL; channels named secret* are forbidden."""

    def get_channels(self, request, names):
        return names.split(",")

    def has_channel_permission(self, request, channel):
        return not channel.startswith("secret")


class WhoServes(Channels):
    """A channel stream that first says which process serves it: an event "pid"."""

    def initial_events(self, request, *args, **kwargs):
        yield Event(event="pid", data=os.getpid())


class Mixed(Channels):
    """A snapshot first, then its own ticks interleaved with live channel events."""

    def initial_events(self, request, *args, **kwargs):
        yield Event(event="snapshot", data={"state": "initial"})

    async def stream(self, request, *args, **kwargs):
        for i in range(1000):
            await asyncio.sleep(0.05)
            yield Event(event="tick", data={"i": i})


@csrf_exempt
def publish_view(request, channel):
    """Publishes n events in this server process: {"seq": i, "t": publish time, "pad": size bytes}."""
    count, size = int(request.GET.get("n", "1")), int(request.GET.get("size", "0"))
    ids = [publish(channel, {"seq": i, "t": time.time(), "pad": "x" * size}).id for i in range(count)]
    return JsonResponse({"ids": ids})


def sse_stats(request):
    backend = get_backend()
    return JsonResponse(
        {
            "slow_clients": backend.hub.slow_clients,
            "subscribers": len(backend.hub),
            "open_streams": limits.open_streams(),
            "refused": limits.refused_streams(),
            "revoked": backend.hub.revoked,
        }
    )


class Private(Channels):
    """As a project would: the permission check reads request.user (session, database)."""

    def has_channel_permission(self, request, channel):
        return not request.user.is_authenticated or request.user.is_active


class Members(Channels):
    """Only logged-in (active) users may read."""

    def has_channel_permission(self, request, channel):
        return request.user.is_authenticated


@csrf_exempt
def login_view(request, username):
    """Logs ``username`` in (created if new); answers with the session key."""
    from django.contrib.auth import get_user_model, login

    user, _ = get_user_model().objects.get_or_create(username=username)
    if not user.is_active:
        return HttpResponse("inactive", status=403)
    login(request, user)
    return JsonResponse({"session": request.session.session_key})


@csrf_exempt
def logout_view(request):
    from django.contrib.auth import logout

    logout(request)
    return HttpResponse("logged out", content_type="text/plain")


@csrf_exempt
def deactivate_view(request, username):
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username=username).update(is_active=False)
    return HttpResponse("deactivated", content_type="text/plain")


async def block_loop(request):
    """Blocks the event loop for ?ms= milliseconds, as a busy or badly written view would."""
    time.sleep(int(request.GET.get("ms", "300")) / 1000)  # noqa: ASYNC251  (on purpose)
    return HttpResponse("blocked", content_type="text/plain")


def browser_page(request):
    return HttpResponse(BROWSER_PAGE, content_type="text/html")


BROWSER_PAGE = """<!doctype html><title>sse</title><script>
window.received = []; window.opens = 0; window.resets = 0;
const source = new EventSource("/channels/browser/");
source.onopen = () => { window.opens += 1; };
source.onmessage = (e) => { window.received.push(JSON.parse(e.data).seq); };
source.addEventListener("reset", () => { window.resets += 1; });
</script>"""


class Failing(EventStreamView):
    """One event, then an error in stream(): the response must still end, so the client reconnects."""

    async def stream(self, request, *args, **kwargs):
        yield Event(data={"i": 0})
        raise RuntimeError("boom in async stream()")


class FailingSync(EventStreamView):
    def stream(self, request, *args, **kwargs):
        yield Event(data={"i": 0})
        raise RuntimeError("boom in sync stream()")


class FailingSnapshot(Channels):
    def initial_events(self, request, *args, **kwargs):
        yield Event(data={"i": 0})
        raise RuntimeError("boom in initial_events()")
