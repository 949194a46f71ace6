"""The sync/async bridge: one thread per sync source, nothing lost across timeouts."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

from django_sse import bridge

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def threads_and_context(n):
    for _ in range(n):
        yield (threading.current_thread().name, threading.get_ident(), request_id.get())


def test_sync_source_runs_on_one_named_thread_with_the_callers_context():
    request_id.set("req-1")
    source = bridge.sync_source(threads_and_context(3))
    items = [source.get(None) for _ in range(3)]
    assert source.get(None) is bridge.END
    source.close()
    assert len({ident for _, ident, _ in items}) == 1
    assert items[0][0] == "django-sse-sync" and items[0][1] != threading.get_ident()
    assert {ctx for _, _, ctx in items} == {"req-1"}


def test_timeouts_keep_the_item_in_progress():
    def slow():
        time.sleep(0.3)
        yield "a"
        yield "b"

    source = bridge.sync_source(slow())
    results = [source.get(0.05) for _ in range(3)]
    assert results == [bridge.IDLE] * 3
    assert [x for x in (source.get(1) for _ in range(3)) if x is not bridge.IDLE][:2] == ["a", "b"]
    source.close()


def test_async_source_for_sync_iterable_does_not_block_the_loop():
    def blocking():
        time.sleep(0.3)
        yield "done"

    async def run():
        source = bridge.async_source(blocking())
        ticks = 0
        while (item := await source.get(0.05)) is bridge.IDLE:
            ticks += 1
        await source.aclose()
        return item, ticks

    item, ticks = asyncio.run(run())
    assert item == "done" and ticks >= 3


def test_closing_a_sync_source_stops_its_thread():
    stopped = threading.Event()

    def endless():
        try:
            while True:
                yield 1
        finally:
            stopped.set()

    source = bridge.sync_source(endless())
    assert source.get(None) == 1
    source.close()
    assert stopped.wait(5)
    deadline = time.monotonic() + 5
    while any(t.name == "django-sse-sync" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.name == "django-sse-sync" for t in threading.enumerate())


def test_async_iterable_for_a_sync_consumer_runs_on_its_own_loop_thread():
    async def agen():
        yield threading.current_thread().name
        await asyncio.sleep(0)
        yield "second"

    source = bridge.sync_source(agen())
    assert source.get(None) == "django-sse-async"
    assert source.get(None) == "second"
    assert source.get(None) is bridge.END
    source.close()
