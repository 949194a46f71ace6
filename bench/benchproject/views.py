"""Streams of ``n`` events ``interval`` seconds apart; each carries the server's time.time() at yield."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.http import HttpRequest

from django_sse import Event, EventStreamView

from .plain_views import params, ping, plain_async, plain_sync

__all__ = ["AsyncStream", "SyncStream", "ping", "plain_async", "plain_sync"]


def _event(i: int) -> Event:
    return Event(data={"i": i, "t": time.time()}, id=str(i))


class SyncStream(EventStreamView):
    def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Iterator[Event]:
        n, interval = params(request)
        for i in range(n):
            yield _event(i)
            time.sleep(interval)


class AsyncStream(EventStreamView):
    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Event]:
        n, interval = params(request)
        for i in range(n):
            yield _event(i)
            await asyncio.sleep(interval)
