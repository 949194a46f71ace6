"""An opt-in diagnostic event stream: events on a known cadence, each with the server time it was sent.

``manage.py sse_check`` reads it through the whole deployment (server,
proxies) and, knowing when each event was sent, tells delivery per event
from buffering. Include ``django_sse.urls`` to serve it; it answers only
when ``DEBUG`` is on, to staff users, or to requests that carry the
diagnostics token.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden

from .. import __version__
from ..conf import SETTING_NAME, get_settings
from ..delivery import bridge
from ..event import Event
from ..history import parse_last_event_id
from ..response import DEFAULT, EventStreamResponse
from ..views import EventStreamView

__all__ = [
    "HELLO_EVENT",
    "TOKEN_HEADER",
    "Cadence",
    "DiagnosticStreamView",
    "diagnostics_token",
    "parse_cadence",
]

#: The request header that carries the diagnostics token.
TOKEN_HEADER = "X-SSE-Diagnostics-Token"
#: The event type of the stream's first event, which describes the stream and the request.
HELLO_EVENT = "diagnostics"

#: Request headers that proxies add; their names (not values) are reported in the first event.
_PROXY_HEADERS = ("Forwarded", "Via", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-IP")


def diagnostics_token() -> str | None:
    """The token from ``DJANGO_SSE["DIAGNOSTICS_TOKEN"]``, or ``None``."""
    return get_settings().diagnostics_token


@dataclass(frozen=True)
class Cadence:
    """What the diagnostic stream sends: ``count`` events ``interval`` ms apart, then ``idle`` s without."""

    interval: int  # milliseconds between two events
    count: int
    heartbeat: float | None  # seconds; None: no heartbeat
    idle: float  # seconds without events after the last one, before the final event


def _number(query: Mapping[str, str], name: str, low: float, high: float, default: float) -> float:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}.") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {raw!r}.")
    return value


def parse_cadence(query: Mapping[str, str], configured_heartbeat: float | None) -> Cadence:
    """The cadence asked for in the query string; ``ValueError`` names a bad parameter."""
    interval = int(_number(query, "interval", 10, 60_000, 500))
    count = int(_number(query, "count", 1, 1000, 10))
    heartbeat: float | None = _number(query, "heartbeat", 0.1, 3600, -1)
    if heartbeat == -1:
        heartbeat = configured_heartbeat
    # By default idle long enough for one heartbeat to be due.
    idle = _number(query, "idle", 0, 3600, heartbeat + 2 if heartbeat else 0)
    return Cadence(interval=interval, count=count, heartbeat=heartbeat, idle=idle)


def _protocol(request: HttpRequest) -> str | None:
    """The HTTP version the application received the request in, e.g. ``"HTTP/1.1"``."""
    if isinstance(request, ASGIRequest):
        version = request.scope.get("http_version")
        return f"HTTP/{version}" if version else None
    return request.META.get("SERVER_PROTOCOL")


class DiagnosticStreamView(EventStreamView):
    """Events on a known cadence, each carrying the server time it was sent at.

    The stream sends, after the usual ``retry:`` field:

    1. a ``diagnostics`` event describing the stream and what the application
       saw of the request (protocol, interface, ``Last-Event-ID``, proxy
       headers, ``Accept-Encoding``);
    2. ``count`` events ``interval`` milliseconds apart, with ids ``1``,
       ``2``, ... (or continuing after a ``Last-Event-ID``), each with data
       ``{"seq": n, "sent": <server time.time()>}``;
    3. after ``idle`` seconds without events (heartbeats only), one more such
       event with ``"after_idle": <seconds>``; then the stream ends.

    Query parameters: ``interval`` (ms, default 500), ``count`` (default
    10), ``heartbeat`` (seconds, default ``DJANGO_SSE["HEARTBEAT"]``),
    ``idle`` (seconds, default two more than the heartbeat).

    Answers only when :meth:`is_allowed` says so, else 403.
    """

    #: The token that lets a request in; ``None``: ``DJANGO_SSE["DIAGNOSTICS_TOKEN"]``.
    token: str | None = None
    cadence: Cadence

    def is_allowed(self, request: HttpRequest) -> bool:
        """With ``DEBUG`` on, for active staff users, or with the token in the request header."""
        if settings.DEBUG:
            return True
        user = getattr(request, "user", None)
        if user is not None and getattr(user, "is_active", False) and getattr(user, "is_staff", False):
            return True
        token = self.token or diagnostics_token()
        given = request.headers.get(TOKEN_HEADER, "")
        if not token or not given:
            return False
        return hmac.compare_digest(given.encode(), token.encode())

    async def get(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponse | EventStreamResponse:
        """The diagnostic stream, or 403 (not allowed) or 400 (a bad query parameter)."""
        # is_allowed() may load request.user: sync code, run where it may use the database.
        if not await bridge.call(self.is_allowed, request):
            return HttpResponseForbidden(
                "django-sse diagnostics: allowed with DEBUG on, for staff users, or with the token "
                f"({SETTING_NAME}['DIAGNOSTICS_TOKEN']) in the {TOKEN_HEADER} header.",
                content_type="text/plain",
            )
        configured = get_settings().heartbeat if self.heartbeat is DEFAULT else self.heartbeat
        try:
            self.cadence = parse_cadence(request.GET, configured)
        except ValueError as exc:
            return HttpResponseBadRequest(str(exc), content_type="text/plain")
        self.heartbeat = self.cadence.heartbeat
        return await super().get(request, *args, **kwargs)

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Event]:
        """Yield the first event, the events on the cadence, and the one after the idle time."""
        cadence = self.cadence
        last_event_id = request.headers.get("Last-Event-ID") or request.GET.get("lastEventId") or None
        resumed = parse_last_event_id(last_event_id)
        seq = resumed + 1 if resumed is not None else 1
        hello = {
            "diagnostics": "django-sse",
            "version": __version__,
            **asdict(cadence),
            "first_seq": seq,
            "last_event_id": last_event_id,
            "interface": "asgi" if isinstance(request, ASGIRequest) else "wsgi",
            "protocol": _protocol(request),
            "server_software": request.META.get("SERVER_SOFTWARE"),
            "accept_encoding": request.headers.get("Accept-Encoding"),
            "proxy_headers": [name for name in _PROXY_HEADERS if name in request.headers],
            "sent": time.time(),
        }
        yield Event(event=HELLO_EVENT, data=hello)
        for i in range(cadence.count):
            if i:
                await asyncio.sleep(cadence.interval / 1000)
            yield Event(id=str(seq), data={"seq": seq, "sent": time.time()})
            seq += 1
        if cadence.idle:
            await asyncio.sleep(cadence.idle)
            yield Event(id=str(seq), data={"seq": seq, "sent": time.time(), "after_idle": cadence.idle})
