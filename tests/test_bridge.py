"""The sync/async bridge: one thread per sync source, nothing lost across timeouts."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from django_sse.delivery import bridge

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
        time.sleep(0.3)  # the slow item under test, not a wait
        yield "a"
        yield "b"

    source = bridge.sync_source(slow())
    results = [source.get(0.05) for _ in range(3)]
    assert results == [bridge.IDLE] * 3
    assert [x for x in (source.get(1) for _ in range(3)) if x is not bridge.IDLE][:2] == ["a", "b"]
    source.close()


def test_async_source_for_sync_iterable_does_not_block_the_loop():
    def blocking():
        time.sleep(0.3)  # the blocking item under test, not a wait
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

    before = set(threading.enumerate())
    source = bridge.sync_source(endless())
    assert source.get(None) == 1
    started = [t for t in threading.enumerate() if t not in before and t.name == "django-sse-sync"]
    assert started, "the source runs on a thread of its own"
    source.close()
    assert stopped.wait(5)
    # Only this test's thread: one another test leaked is that test's failure, not this one's.
    for thread in started:
        thread.join(timeout=5)
    assert not any(thread.is_alive() for thread in started)


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


def test_async_source_keeps_the_item_in_progress_across_heartbeats():
    async def slow():
        await asyncio.sleep(0.3)  # a cancelled step would end the generator here
        yield "a"
        yield "b"

    async def run():
        source = bridge.async_source(slow())
        idle = [await source.get(0.05) for _ in range(3)]
        rest = [await source.get(1) for _ in range(3)]
        await source.aclose()
        return idle, [x for x in rest if x is not bridge.IDLE]

    idle, rest = asyncio.run(run())
    assert idle == [bridge.IDLE] * 3
    assert rest[:2] == ["a", "b"]


def test_one_heartbeat_timer_per_source_not_one_per_item():
    # A timer per get() was the largest cost per event at thousands of streams.
    async def run():
        loop = asyncio.get_running_loop()
        timers = 0
        call_at = loop.call_at

        def counting_call_at(*args, **kwargs):
            nonlocal timers
            timers += 1
            return call_at(*args, **kwargs)

        loop.call_at = counting_call_at  # type: ignore[method-assign,assignment]
        queue: asyncio.Queue[int] = asyncio.Queue()

        async def numbers():
            while True:
                yield await queue.get()

        source = bridge.async_source(numbers())
        for i in range(50):
            loop.call_soon(queue.put_nowait, i)
            assert await source.get(10) == i
        assert timers == 1
        # A shorter timeout than the armed timer's still gets its heartbeat in time.
        started = time.monotonic()
        assert await source.get(0.1) is bridge.IDLE
        waited = time.monotonic() - started
        await source.aclose()
        return waited

    assert 0.09 < asyncio.run(run()) < 2


def test_heartbeat_counts_from_the_last_item_not_from_when_the_timer_was_armed():
    async def run():
        async def steady():
            for i in range(30):
                await asyncio.sleep(0.02)
                yield i
            await asyncio.sleep(30)
            yield "late"

        source = bridge.async_source(steady())
        items = [await source.get(0.25) for _ in range(30)]
        started = time.monotonic()
        assert await source.get(0.25) is bridge.IDLE
        waited = time.monotonic() - started
        await source.aclose()
        return items, waited

    items, waited = asyncio.run(run())
    assert items == list(range(30))  # 0.6 s of items 0.02 s apart: no heartbeat among them
    assert 0.24 < waited < 2


def test_closing_an_async_source_for_a_sync_consumer_mid_item_runs_its_finally():
    closed = threading.Event()

    async def agen():
        try:
            yield 1
            await asyncio.sleep(30)
            yield 2
        finally:
            closed.set()

    source = bridge.sync_source(agen())
    assert source.get(None) == 1
    assert source.get(0.05) is bridge.IDLE  # the item is in progress on the source's loop
    source.close()
    assert closed.wait(5)


def test_merge_yields_items_of_sync_and_async_sources_as_they_come_until_all_end():
    async def ticks():
        for i in range(3):
            await asyncio.sleep(0.01)
            yield f"a{i}"

    async def run():
        return [item async for item in bridge.merge(ticks(), iter(["s0", "s1"]), ticks())]

    items = asyncio.run(run())
    assert sorted(items) == ["a0", "a0", "a1", "a1", "a2", "a2", "s0", "s1"]
    assert [i for i in items if i.startswith("s")] == ["s0", "s1"]


def test_merge_raises_an_error_of_any_source_and_closes_the_others():
    closed = threading.Event()

    async def endless():
        try:
            while True:
                await asyncio.sleep(0.01)
                yield "tick"
        finally:
            closed.set()

    def failing():
        yield "ok"
        raise KeyError("boom")

    async def run():
        async for _ in bridge.merge(endless(), failing()):
            pass

    with pytest.raises(KeyError):
        asyncio.run(run())
    assert closed.is_set()


def test_an_async_source_reads_ahead_by_bytes_as_well_as_by_items():
    from django_sse import Event

    produced = []

    async def big_events():
        for i in range(100):
            produced.append(i)
            yield Event(data="x" * 20_000)

    async def main():
        source = bridge.async_source(big_events())
        assert await source.get(None) is not None
        for _ in range(50):  # let the pump run as far ahead as it will
            await asyncio.sleep(0)
        ahead = len(produced)
        await source.aclose()
        return ahead

    # ~64 KiB ahead: 4 events of 20 kB (not 64 items, 1.3 MB), and the one taken.
    assert asyncio.run(main()) <= 6, "read ahead"
