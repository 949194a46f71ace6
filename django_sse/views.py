"""``EventStreamView``: subclass it and write ``stream()``, or name channels, or both."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

from django.db import connections
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.views import View

from . import limits, signing
from .channel_names import validate_channel
from .conf import get_settings
from .delivery import bridge
from .delivery.channel_stream import ChannelStream
from .response import DEFAULT, Default, EventStreamResponse
from .revocation import session_key, user_key

__all__ = ["EventStreamView"]


class EventStreamView(View):
    """A class-based view that streams server-sent events.

    Either write ``stream(request, *args, **kwargs)`` as an async generator
    or a plain (sync) generator, or name ``channels`` (or override
    ``get_channels()``) to stream what :func:`~django_sse.publish` sends
    there, with ``Last-Event-ID`` replay from history; or both, and the
    view's own events are interleaved with the channels'. Only GET is
    allowed.

    The view is async: under ASGI it starts streams on the event loop, and
    its sync hooks run on a small pool of worker threads, so an open stream
    holds no thread (unless its own ``stream()`` is sync) and no database
    connection.
    """

    http_method_names = ["get"]
    #: Milliseconds a client waits before reconnecting, sent first; ``None`` sends none.
    retry: int | Default | None = DEFAULT
    #: Seconds without an event before a comment heartbeat is sent; ``None`` disables heartbeats.
    heartbeat: float | Default | None = DEFAULT
    #: The channels to stream; see ``get_channels()``.
    channels: Sequence[str] = ()
    #: The event type sent to a reconnecting client whose ``Last-Event-ID`` cannot be resumed.
    reset_event: str = "reset"
    #: The query parameter that may carry a :func:`~django_sse.signing.sign_subscription` token;
    #: ``None`` (the default) accepts no token.
    subscription_token: str | None = None
    #: The salt the token was signed with.
    subscription_salt: str = signing.DEFAULT_SALT

    def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Iterable[Any] | AsyncIterable[Any]:
        """Yield the view's own events. Required unless the view has channels.

        A sync or an async generator (or a method that returns an iterable).
        An async one costs no thread; a sync one holds a ``django-sse-sync``
        thread while the stream is open (at most ``MAX_SYNC_STREAMS``).
        """
        raise NotImplementedError(f"{type(self).__name__} must define a stream() generator or channels.")

    def get_channels(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> Sequence[str] | Awaitable[Sequence[str]]:
        """The channels this request streams; by default the ``channels`` attribute.

        May be ``async def``. A sync one runs on a worker thread, so it may use the ORM.
        An empty list, in a view without a ``stream()`` of its own, answers ``204 No
        Content``: nothing to stream, and the browser's ``EventSource`` stops reconnecting.
        """
        return self.channels

    def has_channel_permission(self, request: HttpRequest, channel: str) -> bool | Awaitable[bool]:
        """Whether ``request`` may read ``channel``; checked before the stream starts. Default: yes.

        May be ``async def`` (use ``await request.auser()`` there). A sync one
        runs on a worker thread, so it may use ``request.user`` and the ORM.
        """
        return True

    def get_revocation_keys(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> Iterable[str] | Awaitable[Iterable[str]]:
        """The keys :func:`~django_sse.revoke` can end this request's channel stream by.

        By default the session's (:func:`~django_sse.revocation.session_key`, so
        that logging out ends the session's streams) and, for a logged-in user,
        the user's (:func:`~django_sse.revocation.user_key`), and the user's
        of a subscription token signed for one. A request without a session
        cookie costs no query. May be ``async def``; a sync one runs on a
        worker thread with the subscription.
        """
        keys = []
        session = getattr(request, "session", None)
        key = getattr(session, "session_key", None)
        if key:
            keys.append(session_key(key))
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                keys.append(user_key(user))
        token = getattr(request, "subscription", None)
        if isinstance(token, signing.SignedSubscription) and token.user_id is not None:
            keys.append(user_key(SimpleNamespace(pk=token.user_id)))
        return list(dict.fromkeys(keys))

    def initial_events(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> Iterable[Any] | AsyncIterable[Any]:
        """Events sent before any live channel event, such as a snapshot of the current state.

        Sent on a fresh connection and after a reset, not when a reconnecting
        client is resumed from history. Called after the channels are
        subscribed: an event published while the snapshot is taken is not
        lost, though it may be both in the snapshot and among the live events
        that follow. A sync generator (or method) runs on a worker thread, so
        the ORM may be used, and is read to its end there: it is a snapshot,
        not a stream. An async generator is read on the event loop.
        """
        return ()

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., Any]:
        """The view function, as for any class-based view; never inside ``ATOMIC_REQUESTS``."""
        view = super().as_view(**initkwargs)
        # A stream outlives any transaction, and Django refuses ATOMIC_REQUESTS for async views.
        view._non_atomic_requests = set(connections)  # type: ignore[attr-defined]
        return view

    async def get(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponse | EventStreamResponse:
        """Answer with an :class:`~django_sse.EventStreamResponse`, or 204/400/403/503."""
        if (refused := limits.refusal(retry=self._retry())) is not None:
            return refused
        subscription = None
        if self.subscription_token is not None:
            token = request.GET.get(self.subscription_token)
            if token is not None:
                try:
                    subscription = signing.verify_subscription(token, salt=self.subscription_salt)
                except signing.SubscriptionTokenError as exc:
                    return HttpResponseForbidden(str(exc), content_type="text/plain")
            request.subscription = subscription  # type: ignore[attr-defined]
        names = await self._hook("get_channels", request, *args, **kwargs)
        if isinstance(names, (str, bytes)):
            raise TypeError(f"{type(self).__name__}: channels must be a list of names, not {names!r}.")
        channels = list(dict.fromkeys(names))
        if not channels:
            if _overrides(self, "get_channels") and not _overrides(self, "stream"):
                # Nothing to stream for this request: 204 also tells EventSource not to reconnect.
                return HttpResponse(status=204)
            return await self._response(await self._own_events(request, args, kwargs))
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
        if subscription is not None:
            for channel in channels:
                if channel not in subscription.channels:
                    return HttpResponseForbidden(
                        f"Token does not grant channel {channel!r}.", content_type="text/plain"
                    )
        denied = await self._denied_channel(request, channels)
        if denied is not None:
            return HttpResponseForbidden(f"You may not read channel {denied!r}.", content_type="text/plain")
        own = None
        if _overrides(self, "stream"):
            own = await self._own_events(request, args, kwargs)
        initial = None
        if _overrides(self, "initial_events"):

            async def initial() -> Iterable[Any] | AsyncIterable[Any]:
                events = await self._hook("initial_events", request, *args, **kwargs)
                return _checked_iterable(self, events, "initial_events")

        keys: Iterable[str] | Callable[[], Iterable[str]]
        if inspect.iscoroutinefunction(self.get_revocation_keys):
            keys = await self.get_revocation_keys(request, *args, **kwargs)
        else:  # on the worker thread that subscribes: no trip of its own
            keys = functools.partial(self.get_revocation_keys, request, *args, **kwargs)  # type: ignore[assignment]
        events = ChannelStream(
            channels,
            request.headers.get("Last-Event-ID") or request.GET.get("lastEventId") or None,
            own=own,
            initial=initial,
            reset_event=self.reset_event,
            keys=keys,
        )
        return await self._response(events, own)

    async def _hook(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call one of the view's hooks: inline if it is ours (it does nothing), else through the bridge."""
        method = getattr(self, name)
        if (
            not _overrides(self, name)
            or inspect.isgeneratorfunction(method)
            or inspect.isasyncgenfunction(method)
        ):
            return method(*args, **kwargs)  # no code of the view's runs until it is iterated
        return await bridge.call(method, *args, **kwargs)

    async def _own_events(
        self, request: HttpRequest, args: Any, kwargs: Any
    ) -> Iterable[Any] | AsyncIterable[Any]:
        return _checked_iterable(self, await self._hook("stream", request, *args, **kwargs))

    async def _denied_channel(self, request: HttpRequest, channels: list[str]) -> str | None:
        """The first of ``channels`` that ``request`` may not read, or None."""
        if not _overrides(self, "has_channel_permission"):
            return None
        check = self.has_channel_permission
        if inspect.iscoroutinefunction(check):
            for channel in channels:
                if not await check(request, channel):
                    return channel
            return None
        return await bridge.call(_first_denied, self, request, channels)  # one trip to a thread for all

    async def _response(
        self, events: Iterable[Any] | AsyncIterable[Any], own: object = None
    ) -> HttpResponse | EventStreamResponse:
        sync = not bridge.is_async_iterable(own if own is not None else events)
        if (refused := limits.refusal(sync=sync, retry=self._retry())) is not None:
            close = getattr(own if own is not None else events, "close", None)
            if close is not None:
                close()  # a generator that never ran: its finally, if any, runs now
            return refused
        response = EventStreamResponse(events, retry=self.retry, heartbeat=self.heartbeat)
        response.stream_name = f"{type(self).__module__}.{type(self).__qualname__}"
        response.stream_view = type(self)  # the signals' sender (django_sse.signals)
        response.stream_request = self.request
        return response

    def _retry(self) -> int | None:
        return get_settings().retry if self.retry is DEFAULT else self.retry


def _overrides(view: EventStreamView, name: str) -> bool:
    return getattr(type(view), name) is not getattr(EventStreamView, name)


def _first_denied(view: EventStreamView, request: HttpRequest, channels: list[str]) -> str | None:
    for channel in channels:
        allowed = view.has_channel_permission(request, channel)
        if inspect.isawaitable(allowed):
            if inspect.iscoroutine(allowed):
                allowed.close()
            # An awaitable is truthy: treating it as permission would let everybody in.
            raise TypeError(
                f"{type(view).__name__}.has_channel_permission() returned an awaitable: "
                "declare it with async def."
            )
        if not allowed:
            return channel
    return None


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
