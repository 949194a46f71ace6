"""The views of bench/soak.py besides the streams bench's ``Room``.

- ``publisher``: ``POST /soak/publisher/?rate=R&size=N&seconds=S`` starts a thread in the server
  that calls ``publish()`` R times a second for S seconds, ``{"pad": "x" * N}`` each time, 4 in 5 to
  ``room.bench`` and the rest to ``room.c0`` .. ``room.c49``; ``GET`` answers whether it still runs and
  the ids it published to ``room.bench``. (A thread of the server's own, as a task started by a view
  would be: publishing through a view would queue behind the churn's requests in Django's one
  thread for sync code, and measure that queue instead.)
- ``stats``: the public counts (subscriptions, open streams, slow-client cuts, refusals) and the
  threads that hold an open database connection (``connections``). With ``?objects=1``, after a
  collection, how many objects Python's garbage collector tracks; with ``?trim=1``, that and then
  glibc asked to give freed heap back to the system (``malloc_trim(0)``), which tells memory that
  is free but kept from memory still in use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import random
import threading
import time

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from django_sse import limits
from django_sse import publish as publish_event
from django_sse.backends import get_backend, open_subscriptions

OTHER_ROOMS = 50
_published: list[int] = []
_running = threading.Event()


def _publish(rate: float, size: int, seconds: float) -> None:
    try:
        pad = "x" * size
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < seconds:
            channel = "room.bench" if random.random() < 0.8 else f"room.c{random.randrange(OTHER_ROOMS)}"
            event = publish_event(channel, {"pad": pad})
            if channel == "room.bench":
                _published.append(int(event.id or 0))
            sent += 1
            time.sleep(max(0.0, started + sent / rate - time.monotonic()))
    finally:
        connection.close()  # this thread's: no request ends to close it
        _running.clear()


@csrf_exempt
def publisher(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        _published.clear()
        _running.set()
        args = (float(request.GET["rate"]), int(request.GET["size"]), float(request.GET["seconds"]))
        threading.Thread(target=_publish, args=args, name="soak-publisher", daemon=True).start()
    return JsonResponse({"running": _running.is_set(), "ids": _published})


def stats(request: HttpRequest) -> JsonResponse:
    trimmed = objects = None
    if request.GET.get("objects") or request.GET.get("trim"):
        gc.collect()
        objects = len(gc.get_objects())
    if request.GET.get("trim"):
        libc = ctypes.util.find_library("c")
        if libc is not None:
            trimmed = bool(ctypes.CDLL(libc).malloc_trim(0))
    from django.db.backends.base.base import BaseDatabaseWrapper

    names = {t.ident: t.name for t in threading.enumerate()}
    open_connections = [
        names.get(getattr(w, "_thread_ident", None), "a thread that has ended")
        for w in gc.get_objects()
        if isinstance(w, BaseDatabaseWrapper) and w.connection is not None
    ]
    hub = get_backend().hub
    return JsonResponse(
        {
            "subscriptions": open_subscriptions(),
            "open_streams": limits.open_streams(),
            "slow_clients": hub.slow_clients,
            "refused": limits.refused_streams(),
            "trimmed": trimmed,
            "connections": open_connections,
            "objects": objects,
        }
    )
