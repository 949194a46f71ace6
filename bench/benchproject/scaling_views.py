"""Scaling bench views (bench/scaling.py): a channel stream that says which worker serves it.

- ``Feed``: ``EventStreamView`` on the ``bench`` channel; the response carries the PID of the
  worker process in an ``X-Bench-Worker`` header, so that the client process can count how the
  kernel spread the connections over ``uvicorn --workers N``.
- ``stats``: this worker's PID, subscribers, slow clients and the backend's outage count. Behind one
  port it reaches whichever worker accepts the connection; bench/scaling.py asks over fresh
  connections until every worker has answered.
"""

from __future__ import annotations

import os
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from django_sse import EventStreamResponse, EventStreamView
from django_sse.backends import get_backend

CHANNEL = "bench"
WORKER_HEADER = "X-Bench-Worker"


class Feed(EventStreamView):
    channels = [CHANNEL]

    async def get(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponse | EventStreamResponse:
        response = await super().get(request, *args, **kwargs)
        response[WORKER_HEADER] = str(os.getpid())
        return response


def stats(request: HttpRequest) -> JsonResponse:
    backend = get_backend()
    return JsonResponse(
        {
            "pid": os.getpid(),
            "subscribers": len(backend.hub),
            "slow_clients": backend.hub.slow_clients,
            "outages": getattr(backend, "outages", None),
            "available": getattr(backend, "available", None),
        }
    )
