from __future__ import annotations

import asyncio
import threading

import pytest

from django_sse import Event
from django_sse.fanout import Closed, Hub, SlowClient, Subscription


def run(coro):
    return asyncio.run(coro)


def test_delivery_from_another_thread_in_order_to_the_right_subscribers():
    async def main():
        hub = Hub()
        loop = asyncio.get_running_loop()
        a, ab = Subscription(hub, ["a"], 10, loop), Subscription(hub, ["a", "b"], 10, loop)
        hub.add(a)
        hub.add(ab)
        events = [
            ("a", Event(data="1", id="1")),
            ("b", Event(data="2", id="2")),
            ("c", Event(data="3", id="3")),
        ]
        threading.Thread(target=hub.deliver, args=(events,)).start()
        got_a = await asyncio.wait_for(a.get(), 5)
        got_ab = [await asyncio.wait_for(ab.get(), 5) for _ in range(2)]
        return got_a.id, [e.id for e in got_ab], hub.channels()

    assert run(main()) == ("1", ["1", "2"], {"a", "b"})


def test_same_event_object_for_every_subscriber():
    async def main():
        hub = Hub()
        loop = asyncio.get_running_loop()
        subs = [Subscription(hub, ["a"], 10, loop) for _ in range(3)]
        for s in subs:
            hub.add(s)
        event = Event(data="x", id="1")
        hub.deliver([("a", event)])
        return [await s.get() for s in subs], event

    got, event = run(main())
    assert all(e is event for e in got)


def test_overflow_ends_only_that_subscription_frees_its_buffer_and_is_counted():
    async def main():
        hub = Hub()
        loop = asyncio.get_running_loop()
        slow, fine = Subscription(hub, ["a"], 3, loop), Subscription(hub, ["a"], 100, loop)
        hub.add(slow)
        hub.add(fine)
        hub.deliver([("a", Event(data=str(i), id=str(i + 1))) for i in range(5)])
        await asyncio.sleep(0)
        with pytest.raises(SlowClient):
            await slow.get()
        return [(await fine.get()).data for _ in range(5)], hub.slow_clients, len(hub), len(slow._buffer)

    assert run(main()) == (["0", "1", "2", "3", "4"], 1, 1, 0)


def test_close_all_ends_streams():
    async def main():
        hub = Hub()
        sub = Subscription(hub, ["a"], 10, asyncio.get_running_loop())
        hub.add(sub)
        hub.close_all("bye")
        with pytest.raises(Closed, match="bye"):
            await asyncio.wait_for(sub.get(), 5)

    run(main())


def test_delivery_to_a_closed_loop_drops_the_subscription():
    hub = Hub()
    loop = asyncio.new_event_loop()
    sub = Subscription(hub, ["a"], 10, loop)
    hub.add(sub)
    loop.close()
    hub.deliver([("a", Event(data="x", id="1"))])
    assert len(hub) == 0
    sub.close()  # idempotent


def test_len_counts_each_subscription_once_and_follows_removals():
    loop = asyncio.new_event_loop()
    try:
        hub = Hub()
        subs = [Subscription(hub, ["a", "b", "c"], 10, loop) for _ in range(3)]
        for s in subs:
            hub.add(s)
        assert len(hub) == 3
        subs[0].close()
        subs[0].close()  # idempotent
        assert len(hub) == 2
        hub.add(Subscription(hub, ["d"], 10, loop))
        assert (len(hub), hub.channels()) == (3, {"a", "b", "c", "d"})
    finally:
        loop.close()


def test_events_are_buffered_with_their_ids_as_ints_in_batch_order_per_subscriber():
    async def main():
        hub = Hub()
        loop = asyncio.get_running_loop()
        a, ab, b = (Subscription(hub, names, 10, loop) for names in (["a"], ["a", "b"], ["b"]))
        for s in (a, ab, b):
            hub.add(s)
        events = [Event(data=str(i), id=str(i)) for i in range(1, 5)]
        hub.deliver(list(zip(["a", "b", "a", "b"], events, strict=True)))
        await asyncio.sleep(0)

        def drain(s):
            taken = []
            while (entry := s.take()) is not None:
                taken.append(entry)
            return taken

        return drain(a), drain(ab), drain(b), events

    a, ab, b, events = run(main())
    assert a == [(1, events[0]), (3, events[2])]
    assert ab == [(i + 1, e) for i, e in enumerate(events)]
    assert b == [(2, events[1]), (4, events[3])]


def test_on_ready_is_called_on_the_loop_for_events_and_for_the_end():
    async def main():
        hub = Hub()
        sub = Subscription(hub, ["a"], 10, asyncio.get_running_loop())
        calls = []
        called = asyncio.Event()

        def on_ready():
            calls.append(threading.current_thread())
            called.set()

        sub.on_ready = on_ready
        hub.add(sub)
        threading.Thread(target=hub.deliver, args=([("a", Event(data="x", id="1"))],)).start()
        await asyncio.wait_for(called.wait(), 5)
        hub.close_all("bye")
        await asyncio.sleep(0.01)
        assert sub.take() == (1, Event(data="x", id="1"))
        with pytest.raises(Closed):
            sub.take()
        return calls

    assert run(main()) == [threading.current_thread()] * 2
