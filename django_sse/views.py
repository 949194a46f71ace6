"""``EventStreamView``: subclass it and write ``stream()``, or name channels, or both."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.views import View

from .channel_names import validate_channel
from .conf import get_settings
from .response import DEFAULT, EventStreamResponse
from .streams import channel_stream

__all__ = ["EventStreamView"]


class EventStreamView(View):
    """A class-based view that streams server-sent events.

    Either write ``stream(request, *args, **kwargs)`` as an async generator
    or a plain (sync) generator, or name ``channels`` (or override
    ``get_channels()``) to stream what :func:`~django_sse.publish` sends
    there, with ``Last-Event-ID`` replay from history; or both, and the
    view's own events are interleaved with the channels'. Only GET is
    allowed.
    """

    http_method_names = ["get"]
    #: Milliseconds a client waits before reconnecting, sent first; ``None`` sends none.
    retry: int | None = DEFAULT
    #: Seconds without an event before a comment heartbeat is sent; ``None`` disables heartbeats.
    heartbeat: float | None = DEFAULT
    #: The channels to stream; see ``get_channels()``.
    channels: Sequence[str] = ()
    #: The event type sent to a reconnecting client whose ``Last-Event-ID`` cannot be resumed.
    reset_event: str = "reset"

    def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Iterable[Any] | AsyncIterable[Any]:
        """Yield the view's own events. Required unless the view has channels."""
        raise NotImplementedError(f"{type(self).__name__} must define a stream() generator or channels.")

    def get_channels(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Sequence[str]:
        """The channels this request streams; by default the ``channels`` attribute."""
        return self.channels

    def has_channel_permission(self, request: HttpRequest, channel: str) -> bool:
        """Whether ``request`` may read ``channel``; checked before the stream starts. Default: yes."""
        return True

    def initial_events(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> Iterable[Any] | AsyncIterable[Any]:
        """Events sent before any live channel event, such as a snapshot of the current state.

        Sent on a fresh connection and after a reset, not when a reconnecting
        client is resumed from history. Called (in a thread, so the ORM may be
        used) after the channels are subscribed: an event published while the
        snapshot is taken is not lost, though it may be both in the snapshot
        and among the live events that follow.
        """
        return ()

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse | EventStreamResponse:
        """Answer with an :class:`~django_sse.EventStreamResponse`, or 400/403 for channels."""
        names = self.get_channels(request, *args, **kwargs)
        if isinstance(names, (str, bytes)):
            raise TypeError(f"{type(self).__name__}: channels must be a list of names, not {names!r}.")
        channels = list(dict.fromkeys(names))
        if not channels:
            return self._response(_checked_iterable(self, self.stream(request, *args, **kwargs)))
        limit = get_settings().max_channels
        if len(channels) > limit:
            return HttpResponseBadRequest(
                f"Too many channels: {len(channels)}, at most {limit}.", content_type="text/plain"
            )
        for channel in channels:
            try:
                validate_channel(channel)
            except ValueError as exc:
                return HttpResponseBadRequest(str(exc), content_type="text/plain")
        for channel in channels:
            allowed = self.has_channel_permission(request, channel)
            if inspect.isawaitable(allowed):
                if inspect.iscoroutine(allowed):
                    allowed.close()
                # An awaitable is truthy: treating it as permission would let everybody in.
                raise TypeError(
                    f"{type(self).__name__}.has_channel_permission() must be sync and return a bool."
                )
            if not allowed:
                return HttpResponseForbidden(
                    f"You may not read channel {channel!r}.", content_type="text/plain"
                )
        own = None
        if type(self).stream is not EventStreamView.stream:
            own = _checked_iterable(self, self.stream(request, *args, **kwargs))
        events = channel_stream(
            channels,
            request.headers.get("Last-Event-ID") or request.GET.get("lastEventId") or None,
            own=own,
            initial=lambda: _checked_iterable(
                self, self.initial_events(request, *args, **kwargs), "initial_events"
            ),
            reset_event=self.reset_event,
        )
        return self._response(events)

    def _response(self, events: Iterable[Any] | AsyncIterable[Any]) -> EventStreamResponse:
        return EventStreamResponse(events, retry=self.retry, heartbeat=self.heartbeat)


def _checked_iterable(
    view: View, events: object, method: str = "stream"
) -> Iterable[Any] | AsyncIterable[Any]:
    # A str, bytes or dict is iterable too, but streaming it item by item is never what was meant.
    if isinstance(events, (str, bytes, Mapping)) or not (
        hasattr(events, "__iter__") or hasattr(events, "__aiter__")
    ):
        raise TypeError(
            f"{type(view).__name__}.{method}() must be a generator or return an iterable, "
            f"not {type(events).__name__}."
        )
    return events  # type: ignore[return-value]
