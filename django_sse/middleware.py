"""``EventStreamMiddleware``: per-event delivery for every ``text/event-stream`` response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase

from . import limits
from .response import EventStreamResponse, is_event_stream

__all__ = ["EventStreamMiddleware"]


class EventStreamMiddleware:
    """Make any ``text/event-stream`` response deliver each event as it is produced.

    - Compression middleware placed above this one (``GZipMiddleware`` holds
      events back) leaves event streams alone: this removes the request's
      ``Accept-Encoding`` before they see the response.
    - A hand-built ``StreamingHttpResponse`` is adopted as an
      :class:`~django_sse.EventStreamResponse`: a sync iterator is no longer
      collected into a list under ASGI, headers go out at once, heartbeats
      are added. Past ``MAX_STREAMS`` (or ``MAX_SYNC_STREAMS`` for a sync
      iterator) it is answered ``503`` instead.
    - Streaming responses get ``Cache-Control: no-cache`` (unless set) and
      ``X-Accel-Buffering: no``. A non-streaming ``text/event-stream``
      response is complete anyway; it is only kept from being compressed.

    Place it below ``GZipMiddleware`` (and any other compression middleware)
    in ``MIDDLEWARE``; ``manage.py check`` reports it otherwise.
    """

    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase]
        | Callable[[HttpRequest], Awaitable[HttpResponseBase]],
    ) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        """Handle a request in the mode (sync or async) of the rest of the chain."""
        if self.async_mode:
            return self.__acall__(request)
        return self.process_response(request, self.get_response(request))  # type: ignore[arg-type]

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        return self.process_response(request, await self.get_response(request))  # type: ignore[misc]

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """Return ``response``, made to deliver per event if it is an event stream."""
        if not is_event_stream(response):
            return response
        # Compression middleware reads Accept-Encoding when the response
        # passes through it, which is after us when it sits above us.
        request.META.pop("HTTP_ACCEPT_ENCODING", None)
        if isinstance(response, StreamingHttpResponse) and not isinstance(response, EventStreamResponse):
            refused = limits.refusal(sync=not response.is_async)
            if refused is not None:
                response.close()
                return refused
            return EventStreamResponse.adopt(response)
        return response
