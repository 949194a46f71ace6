"""The per-event hot path in-process, no HTTP: server CPU per delivered event for N streams on one loop.

Run from the repository root: ``.venv/bin/python bench/hotpath.py [--streams N] [--events M]``.
Every stream is consumed the way Django's ASGI handler does it (``aclosing(aiter(response))``, one
``send()`` per chunk, here a no-op that counts events). Rows, each on a fresh event loop:

- ``channel``: ``EventStreamResponse(ChannelStream(...))``, as ``EventStreamView`` with ``channels``
  builds it, with the embedded backend and history off (no database); events are published with
  ``backend.publish()``, i.e. ``Hub.deliver()`` and one ``call_soon_threadsafe`` per event.
- ``asgi``: the same ``channel`` response, sent by ``django_sse.asgi.ASGIHandler.send_response()``
  (events written from the callback that makes them ready) instead of Django's loop.
- ``queue``: ``EventStreamResponse`` over an async generator awaiting an ``asyncio.Queue`` of its own,
  which the publisher fills with the same ``Event`` for every stream: the bridge without the fan-out.
- ``plain``: the peers' baseline (bench/fanout.py's): Django's own ``StreamingHttpResponse`` over an
  async generator awaiting an ``asyncio.Queue`` of already-encoded bytes.

The publisher publishes ``--burst`` events, waits until every stream has sent them, and repeats
(``--events`` in all). CPU is ``time.process_time()`` over the publishing, after every stream is
subscribed and has received one warm-up event. Each row is run ``--repeat`` times; the best run
counts (the machine may be shared). Ratios are against ``plain``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from pathlib import Path
from typing import Any

import django
from django.conf import settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
DATA = b"data: "  # one data line per published event, none in preamble, id-only or heartbeat blocks


class Counter:
    """Events sent by all streams; wakes the publisher when a target is reached."""

    def __init__(self) -> None:
        self.sent = 0
        self.target = 0
        self.reached: asyncio.Future[None] | None = None

    async def until(self, target: int) -> None:
        self.target = target
        if self.sent < target:
            self.reached = asyncio.get_running_loop().create_future()
            await self.reached

    async def send(self, message: Mapping[str, Any]) -> None:
        self.sent += message.get("body", b"").count(DATA)
        if self.sent >= self.target and self.reached is not None and not self.reached.done():
            self.reached.set_result(None)


async def serve(response: Any, counter: Counter) -> None:
    """What Django's ASGI handler does with a streaming response (django/core/handlers/asgi.py)."""
    async with aclosing(aiter(response)) as content:
        async for part in content:
            await counter.send({"type": "http.response.body", "body": part, "more_body": True})


async def run_row(kind: str, streams: int, events: int, burst: int) -> float:
    """CPU seconds per delivered event for one row."""
    from django.http import StreamingHttpResponse

    from django_sse import Event, EventStreamResponse
    from django_sse.asgi import ASGIHandler
    from django_sse.backends import get_backend, reset_backend
    from django_sse.delivery.channel_stream import ChannelStream

    counter = Counter()
    queues: list[asyncio.Queue[Any]] = []

    async def from_queue(encoded: bool) -> AsyncIterator[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        queues.append(queue)
        if encoded:
            yield b"retry: 3000\n\n"  # as bench/fanout.py's baseline view
        while True:
            yield await queue.get()

    def make_response() -> Any:
        if kind in ("channel", "asgi"):
            stream = ChannelStream(["bench"], None, own=None, initial=None, reset_event="reset")
            return EventStreamResponse(stream)
        if kind == "queue":
            return EventStreamResponse(from_queue(encoded=False))
        return StreamingHttpResponse(from_queue(encoded=True), content_type="text/event-stream")

    reset_backend()
    backend = get_backend()
    seq = 0

    def publish() -> None:
        nonlocal seq
        seq += 1
        payload = {"seq": seq, "t": time.time()}
        if kind in ("channel", "asgi"):
            backend.publish("bench", Event(data=payload))
        elif kind == "queue":
            event = Event(data=payload, id=str(seq))  # encoded once, like a published event
            for queue in queues:
                queue.put_nowait(event)
        else:
            chunk = f"id: {seq}\ndata: {json.dumps(payload)}\n\n".encode()
            for queue in queues:
                queue.put_nowait(chunk)

    def subscribed() -> int:
        return len(backend.hub) if kind in ("channel", "asgi") else len(queues)

    if kind == "asgi":
        handler = ASGIHandler()
        tasks = [
            asyncio.create_task(handler.send_response(make_response(), counter.send)) for _ in range(streams)
        ]
    else:
        tasks = [asyncio.create_task(serve(make_response(), counter)) for _ in range(streams)]
    while subscribed() < streams:  # noqa: ASYNC110 - a count of the library's, nothing to wait on
        await asyncio.sleep(0.01)
    publish()  # warm-up: every stream in its steady state
    await counter.until(streams)
    gc.collect()
    start = time.process_time()
    for _ in range(events // burst):
        for _ in range(burst):
            publish()
        await counter.until(streams * seq)
    cpu = time.process_time() - start
    delivered = counter.sent - streams
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    reset_backend()
    return cpu / delivered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, default=1000, help="open streams (default 1000)")
    parser.add_argument("--events", type=int, default=50, help="events published (default 50)")
    parser.add_argument("--burst", type=int, default=1, help="events published at once (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the best counts (default 3)")
    parser.add_argument(
        "--heartbeat", type=json.loads, default=15.0, help="HEARTBEAT seconds, or null (default 15)"
    )
    parser.add_argument("--rows", default="channel,asgi,queue,plain", help="comma-separated rows to run")
    args = parser.parse_args()
    settings.configure(
        INSTALLED_APPS=["django_sse"],
        DJANGO_SSE={"HISTORY": False, "HEARTBEAT": args.heartbeat},
        USE_TZ=True,
    )
    django.setup()
    best = dict.fromkeys(args.rows.split(","), float("inf"))
    for _ in range(args.repeat):
        for kind in best:  # interleaved, so that a busy spell of the machine hits every row
            best[kind] = min(best[kind], asyncio.run(run_row(kind, args.streams, args.events, args.burst)))
    print(
        f"{args.streams} streams x {args.events} events (burst {args.burst}), "
        f"HEARTBEAT {args.heartbeat}, best of {args.repeat}, Python {sys.version.split()[0]}"
    )
    print(f"{'row':<10}{'us CPU/evt':>12}{'x plain':>9}")
    for kind, seconds in best.items():
        ratio = f"{seconds / best['plain']:.2f}" if "plain" in best else "-"
        print(f"{kind:<10}{seconds * 1e6:>12.1f}{ratio:>9}")


if __name__ == "__main__":
    main()
