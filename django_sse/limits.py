"""How many streams this process holds: counted, and refused past ``MAX_STREAMS``.

A stream that would go past ``DJANGO_SSE["MAX_STREAMS"]`` open streams (or,
for a sync ``stream()``, past ``MAX_SYNC_STREAMS`` running sync streams) is
answered ``503 Service Unavailable`` with ``Retry-After`` and a plain text
body, before any hook of the view runs; the streams already open are not
affected. Refusals are counted, and logged once per burst: once when the
first is refused, not again until a stream has been accepted since.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref

from django.http import HttpResponse

from .conf import get_settings
from .delivery import bridge

__all__ = ["StreamSlot", "open_streams", "refusal", "refused_streams"]

logger = logging.getLogger("django_sse")

_lock = threading.Lock()
_open = 0
_refused = 0
_refusing = False  # within a burst of refusals: logged already


def open_streams() -> int:
    """How many event streams of this process are open (responses made and not yet closed)."""
    return _open


def refused_streams() -> int:
    """How many streams this process has refused with a 503 since it started."""
    return _refused


def _release() -> None:
    global _open
    with _lock:
        _open -= 1


class StreamSlot:
    """One open stream, counted from now until ``release()``; released when garbage-collected too."""

    def __init__(self) -> None:
        global _open
        with _lock:
            _open += 1
        #: Idempotent: the first call releases, later ones do nothing.
        self.release = weakref.finalize(self, _release)


def refusal(*, sync: bool = False, retry: int | None = None) -> HttpResponse | None:
    """A 503 response if one more stream (a ``sync`` one: running a thread) is over the limits, else None.

    ``Retry-After`` is ``retry`` (the stream's, in milliseconds; default ``DJANGO_SSE["RETRY"]``)
    rounded up to whole seconds, at least 1.
    """
    global _refused, _refusing
    conf = get_settings()
    if sync and bridge.sync_stream_threads() >= conf.max_sync_streams:
        reason = f"{conf.max_sync_streams} sync streams are running (MAX_SYNC_STREAMS)"
    elif _open >= conf.max_streams:
        reason = f"{conf.max_streams} streams are open (MAX_STREAMS)"
    else:
        _refusing = False
        return None
    with _lock:
        _refused += 1
        first = not _refusing
        _refusing = True
    if first:
        logger.warning("django-sse: refusing new streams with 503: %s in this process", reason)
    retry = conf.retry if retry is None else retry
    retry_after = max(1, math.ceil((retry or 0) / 1000))
    return HttpResponse(
        f"Too many open event streams here: {reason}. Try again in {retry_after} s.",
        status=503,
        content_type="text/plain",
        headers={"Retry-After": str(retry_after)},
    )
