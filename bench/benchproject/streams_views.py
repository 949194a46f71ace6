"""The django-sse views of bench/streams.py (settings ``settings_streams``).

- ``Room``: an ``EventStreamView`` whose channel comes from the URL (``room.<name>``) and whose
  permission check reads ``request.user`` (anonymous users are let in), as a site's would.
- ``publish``: ``POST /streams/publish/?seq=N`` calls ``publish("room.bench", {"seq": N, "t": ...})``:
  stored in the SQLite history, then fanned out by the embedded backend.
- ``Fast``: one stream as fast as django-sse sends it: an async ``stream()`` yielding the same
  100-byte ``Event`` back to back, with no await between yields.
- ``First``: one such event at once, then nothing (the time to the first event is measured on it).
- ``stats``: subscriptions of the embedded backend's hub.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from django_sse import Event, EventStreamView
from django_sse import publish as publish_event
from django_sse.backends import get_backend

from .streams_plain_views import FAST_DATA, FAST_EVENT

CHANNEL = "room.bench"
FAST = Event(data=FAST_DATA)
assert FAST.encode() == FAST_EVENT  # the same 100 bytes as the plain view's


class Room(EventStreamView):
    def get_channels(self, request: HttpRequest, name: str) -> Sequence[str]:
        return [f"room.{name}"]

    def has_channel_permission(self, request: HttpRequest, channel: str) -> bool:
        request.user.is_authenticated  # noqa: B018 (loads the session and the user, as a real check does)
        return True


@csrf_exempt
@require_POST
def publish(request: HttpRequest) -> JsonResponse:
    seq = int(request.GET.get("seq", "1"))
    event = publish_event(CHANNEL, {"seq": seq, "t": time.time()})
    return JsonResponse({"id": event.id})


class Fast(EventStreamView):
    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Event]:
        while True:
            yield FAST


class First(EventStreamView):
    """One event at once, then nothing: what the time to a stream's first event is measured on."""

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Event]:
        yield FAST
        await asyncio.sleep(3600)


async def stats(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"subscribers": len(get_backend().hub)})
