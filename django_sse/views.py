"""``EventStreamView``: subclass it and write ``stream()``."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any

from django.http import HttpRequest
from django.views import View

from .response import DEFAULT, EventStreamResponse

__all__ = ["EventStreamView"]


class EventStreamView(View):
    """A class-based view that streams what ``stream()`` yields as server-sent events.

    ``stream(request, *args, **kwargs)`` may be an async generator or a plain
    (sync) generator; either streams one event at a time under ASGI and WSGI.
    Only GET is allowed. ``retry`` and ``heartbeat`` override the
    ``DJANGO_SSE`` setting for this view.
    """

    http_method_names = ["get"]
    #: Milliseconds a client waits before reconnecting, sent first; ``None`` sends none.
    retry: int | None = DEFAULT
    #: Seconds without an event before a comment heartbeat is sent; ``None`` disables heartbeats.
    heartbeat: float | None = DEFAULT

    def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Iterable[Any] | AsyncIterable[Any]:
        """Yield the events to send. Subclasses must implement it."""
        raise NotImplementedError(f"{type(self).__name__} must define a stream() generator.")

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> EventStreamResponse:
        """Answer with an :class:`~django_sse.EventStreamResponse` over ``stream()``."""
        events = self.stream(request, *args, **kwargs)
        # A str, bytes or dict is iterable too, but streaming it item by item is never what was meant.
        if isinstance(events, (str, bytes, Mapping)) or not (
            hasattr(events, "__iter__") or hasattr(events, "__aiter__")
        ):
            raise TypeError(
                f"{type(self).__name__}.stream() must be a generator or return an iterable, "
                f"not {type(events).__name__}."
            )
        return EventStreamResponse(events, retry=self.retry, heartbeat=self.heartbeat)
