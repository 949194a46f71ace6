"""Ending channel streams when the server process is asked to stop.

Servers wait for open responses before they exit (uvicorn indefinitely by
default), and an event stream never finishes by itself. So on SIGTERM or
SIGINT, every channel stream of the process ends cleanly, its client
reconnects (to another process, or to this one restarted) and replays from
history. The server's own handler is then called as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import Any

__all__ = ["install"]

logger = logging.getLogger("django_sse")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Longest wait, in seconds, for streams to end before the server's own handler runs.
GRACE = 2.0


def install() -> None:
    """Chain our handler before the current SIGTERM/SIGINT handlers; main thread only, idempotent."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        current = signal.getsignal(signum)
        if not getattr(current, "django_sse", False):
            signal.signal(signum, _chain(current))


def _chain(previous: Any) -> Any:
    def handler(signum: int, frame: FrameType | None) -> None:
        from ..backends import close_backend, open_subscriptions
        from .records import mark_stopping

        mark_stopping()  # streams that end now end for "shutdown"
        try:
            close_backend("server shutting down")
        except Exception:  # the server's own handler must run whatever happens here
            logger.exception("django-sse: ending streams at shutdown failed")
            _call(previous, signum, frame)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop here (a WSGI worker): the server waits for its threads
            _call(previous, signum, frame)
            return
        # The streams end on this loop: let them finish writing before the server stops it
        # (daphne's reactor drops connections it has not flushed), for at most GRACE seconds.
        deadline = time.monotonic() + GRACE

        def when_streams_ended() -> None:
            if open_subscriptions() and time.monotonic() < deadline:
                loop.call_later(0.05, when_streams_ended)
            else:
                loop.call_later(0.05, _call, previous, signum, frame)

        loop.call_soon(when_streams_ended)

    handler.django_sse = True  # type: ignore[attr-defined]
    return handler


def _call(previous: Any, signum: int, frame: FrameType | None) -> None:
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
