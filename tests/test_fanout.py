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
