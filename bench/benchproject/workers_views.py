"""The views of bench/workers.py.

- ``Feed``: a channel stream of ``bench`` whose first event (``pid``) says which worker serves it.
- ``stats``: this worker's pid, subscribers and database queries so far. Behind one port it
  reaches whichever worker accepts the connection: bench/workers.py asks until each has answered.
- ``publish``: ``POST`` publishes ``{"t": time.time()}`` in this worker (the in-process row).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from django_sse import Event, EventStreamView
from django_sse import publish as publish_event
from django_sse.backends import open_subscriptions

CHANNEL = "bench"
#: Database queries of this process (a one-item list: the execute wrapper adds to it).
QUERIES = [0]


class Feed(EventStreamView):
    channels = [CHANNEL]

    def initial_events(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Iterator[Event]:
        yield Event(event="pid", data=os.getpid())


def stats(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"pid": os.getpid(), "subscribers": open_subscriptions(), "queries": QUERIES[0]})


@csrf_exempt
@require_POST
def publish(request: HttpRequest) -> JsonResponse:
    event = publish_event(CHANNEL, {"t": time.time()})
    return JsonResponse({"id": event.id, "pid": os.getpid()})
