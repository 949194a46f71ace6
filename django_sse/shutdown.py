"""Ending channel streams when the server process is asked to stop.

Servers wait for open responses before they exit (uvicorn indefinitely by
default), and an event stream never finishes by itself. So on SIGTERM or
SIGINT, every channel stream of the process ends cleanly, its client
reconnects (to another process, or to this one restarted) and replays from
history. The server's own handler is then called as before.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

__all__ = ["install"]

SIGNALS = (signal.SIGTERM, signal.SIGINT)


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
        from .backends import close_backend

        close_backend("server shutting down")
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    handler.django_sse = True  # type: ignore[attr-defined]
    return handler
