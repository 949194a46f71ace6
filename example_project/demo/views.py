"""The demo's page and its two event streams: one async, one a plain sync generator."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from django_sse import Event, EventStreamView

JOB_STEPS = 20
JOB_STEP_SECONDS = 0.5


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/index.html", {"steps": JOB_STEPS, "step_seconds": JOB_STEP_SECONDS})


class ClockStream(EventStreamView):
    """An async generator: the server's time, once a second, until the browser leaves."""

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Event]:
        tick = 0
        while True:  # ends when the client disconnects: the generator is closed then
            now = timezone.localtime()
            yield Event(data={"time": now.strftime("%H:%M:%S"), "date": now.date().isoformat()}, id=str(tick))
            tick += 1
            await asyncio.sleep(1)


class JobStream(EventStreamView):
    """A plain sync generator that blocks: no flush, no async, no thread handling of its own."""

    def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Iterator[Event]:
        started = time.monotonic()
        yield Event(event="progress", data={"step": 0, "of": JOB_STEPS})
        for step in range(1, JOB_STEPS + 1):
            time.sleep(JOB_STEP_SECONDS)  # stands in for real, blocking work
            yield Event(event="progress", data={"step": step, "of": JOB_STEPS})
        yield Event(event="done", data={"seconds": round(time.monotonic() - started, 2)})
