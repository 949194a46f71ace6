from __future__ import annotations

import asyncio
import functools
import threading
from unittest.mock import ANY

import pytest

from django_sse import Event
from django_sse.delivery.hub import (
    REVOCATION_CHANNEL,
    Closed,
    Delivery,
    Hub,
    Revoked,
    SlowClient,
    Subscription,
)


def deliver(hub, pairs):
    """hub.deliver() of (channel, event) pairs, each event's position being its id."""
    hub.deliver([Delivery(channel, None if e.id is None else int(e.id), e) for channel, e in pairs])


def _wake(future):
    if not future.done():
        future.set_result(None)


async def next_event(subscription):
    """The subscription's next event, as a stream's reader takes it (woken by on_ready)."""
    while (entry := subscription.pop()) is None:
        ready = subscription.loop.create_future()
        subscription.on_ready = functools.partial(_wake, ready)
        await ready
    return entry[1]


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
        threading.Thread(target=deliver, args=(hub, events)).start()
        got_a = await asyncio.wait_for(next_event(a), 5)
        got_ab = [await asyncio.wait_for(next_event(ab), 5) for _ in range(2)]
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
        deliver(hub, [("a", event)])
        return [await next_event(s) for s in subs], event

    got, event = run(main())
    assert all(e is event for e in got)


def test_overflow_ends_only_that_subscription_frees_its_buffer_and_is_counted():
    async def main():
        hub = Hub()
        loop = asyncio.get_running_loop()
        slow, fine = Subscription(hub, ["a"], 3, loop), Subscription(hub, ["a"], 100, loop)
        hub.add(slow)
        hub.add(fine)
        deliver(hub, [("a", Event(data=str(i), id=str(i + 1))) for i in range(5)])
        await asyncio.sleep(0)
        with pytest.raises(SlowClient):
            await next_event(slow)
        return (
            [(await next_event(fine)).data for _ in range(5)],
            hub.slow_clients,
            len(hub),
            len(slow._buffer),
        )

    assert run(main()) == (["0", "1", "2", "3", "4"], 1, 1, 0)


def test_close_all_ends_streams():
    async def main():
        hub = Hub()
        sub = Subscription(hub, ["a"], 10, asyncio.get_running_loop())
        hub.add(sub)
        hub.close_all("bye")
        with pytest.raises(Closed, match="bye"):
            await asyncio.wait_for(next_event(sub), 5)

    run(main())


def test_delivery_to_a_closed_loop_drops_the_subscription():
    hub = Hub()
    loop = asyncio.new_event_loop()
    sub = Subscription(hub, ["a"], 10, loop)
    hub.add(sub)
    loop.close()
    deliver(hub, [("a", Event(data="x", id="1"))])
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
        deliver(hub, list(zip(["a", "b", "a", "b"], events, strict=True)))
        await asyncio.sleep(0)

        def drain(s):
            taken = []
            while (entry := s.pop()) is not None:
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
        threading.Thread(target=deliver, args=(hub, [("a", Event(data="x", id="1"))])).start()
        await asyncio.wait_for(called.wait(), 5)
        called.clear()
        hub.close_all("bye")
        await asyncio.wait_for(called.wait(), 5)  # on_ready again, for the end
        assert sub.pop() == (1, Event(data="x", id="1"))
        with pytest.raises(Closed):
            sub.pop()
        return calls

    assert run(main()) == [threading.current_thread()] * 2


def test_a_buffer_over_its_bytes_ends_the_stream_but_one_event_of_any_size_goes_through():
    async def main():
        hub = Hub()
        loop = asyncio.get_running_loop()
        small = Subscription(hub, ["a"], 100, loop, buffer_bytes=1000)
        lone = Subscription(hub, ["b"], 100, loop, buffer_bytes=1000)
        for s in (small, lone):
            hub.add(s)
        deliver(hub, [("a", Event(data="x" * 400, id=str(i + 1))) for i in range(2)])
        deliver(hub, [("b", Event(data="y" * 5000, id="3"))])
        await asyncio.sleep(0)
        assert [small.pop(), small.pop(), lone.pop()] == [  # 2 x ~410 bytes fit; one larger alone too
            (1, ANY),
            (2, ANY),
            (3, ANY),
        ]
        deliver(hub, [("a", Event(data="x" * 400, id=str(i + 4))) for i in range(3)])
        await asyncio.sleep(0)
        with pytest.raises(SlowClient, match="1000 bytes"):
            small.pop()
        return len(hub), hub.slow_clients

    assert run(main()) == (1, 1)


def test_taking_events_gives_their_bytes_back():
    async def main():
        hub = Hub()
        loop = asyncio.get_running_loop()
        sub = Subscription(hub, ["a"], 100, loop, buffer_bytes=1000)
        hub.add(sub)
        for i in range(10):  # 10 x ~410 bytes in all, never more than 2 waiting
            deliver(
                hub,
                [("a", Event(data="x" * 400, id=str(2 * i + 1))), ("a", Event(data="x", id=str(2 * i + 2)))],
            )
            await asyncio.sleep(0)
            assert sub.pop() is not None and sub.pop() is not None
        return sub.pop(), hub.slow_clients

    assert run(main()) == (None, 0)


def revocation(channel=None, key=None, id="99"):
    return (REVOCATION_CHANNEL, Event(data={"channel": channel, "key": key}, id=id))


def test_a_revocation_ends_matching_streams_after_the_events_before_it_and_before_those_after():
    async def main():
        hub = Hub()
        loop = asyncio.get_running_loop()
        alice = Subscription(hub, ["room"], 10, loop, keys=["user:1"])
        bob = Subscription(hub, ["room"], 10, loop, keys=["user:2"])
        alice_elsewhere = Subscription(hub, ["lobby"], 10, loop, keys=["user:1"])
        for s in (alice, bob, alice_elsewhere):
            hub.add(s)
        deliver(
            hub,
            [
                ("room", Event(data="before", id="1")),
                revocation("room", "user:1", id="2"),
                ("room", Event(data="after", id="3")),
            ],
        )
        await asyncio.sleep(0)
        got: dict[str, list[object]] = {name: [] for name in ("alice", "bob", "alice_elsewhere")}
        for name, sub in (("alice", alice), ("bob", bob), ("alice_elsewhere", alice_elsewhere)):
            try:
                while (entry := sub.pop()) is not None:
                    got[name].append(entry[1].data)
            except Revoked as exc:
                got[name].append(f"revoked {exc.channel} {exc.key}")
        return got, len(hub), hub.revoked

    got, remaining, revoked = run(main())
    assert got == {
        "alice": ["before", "revoked room user:1"],
        "bob": ["before", "after"],
        "alice_elsewhere": [],
    }
    assert (remaining, revoked) == (2, 1)


def test_a_revocation_by_key_alone_or_channel_alone():
    async def main():
        hub = Hub()
        loop = asyncio.get_running_loop()
        subs = {
            "a1": Subscription(hub, ["a"], 10, loop, keys=["k1"]),
            "b1": Subscription(hub, ["b"], 10, loop, keys=["k1", "k2"]),
            "a2": Subscription(hub, ["a"], 10, loop, keys=["k2"]),
            "c": Subscription(hub, ["c"], 10, loop),
        }
        for s in subs.values():
            hub.add(s)
        deliver(hub, [revocation(key="k1")])
        deliver(hub, [revocation(channel="a", id="100")])
        await asyncio.sleep(0)
        ended = set()
        for name, sub in subs.items():
            try:
                sub.pop()
            except Revoked:
                ended.add(name)
        return ended, len(hub)

    assert run(main()) == ({"a1", "b1", "a2"}, 1)


def test_a_malformed_revocation_is_logged_and_ends_nothing(caplog):
    async def main():
        hub = Hub()
        sub = Subscription(hub, ["a"], 10, asyncio.get_running_loop(), keys=["k"])
        hub.add(sub)
        deliver(hub, [(REVOCATION_CHANNEL, Event(data="not json", id="5")), ("a", Event(data="x", id="6"))])
        await asyncio.sleep(0)
        entry = sub.pop()
        return entry and entry[1].data

    assert run(main()) == "x"
    assert "malformed revocation" in caplog.text
