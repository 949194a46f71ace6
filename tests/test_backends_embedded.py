"""EmbeddedBackend on its own: its two feeds, chosen by ``HISTORY`` (backends/embedded.py).

Delivery between server processes is covered with real servers (test_servers_workers.py,
test_servers_delivery.py); the dispatcher's reading in test_dispatcher.py.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator

import pytest
from django.db import transaction

from django_sse import history, publish
from django_sse.backends import get_backend, reset_backend
from django_sse.backends.embedded import EmbeddedBackend, MemoryFeed, StoredFeed
from django_sse.delivery.bridge import THREAD_PREFIX
from django_sse.delivery.hub import SlowClient, Subscription
from tests.sse_client import wait_for


class Loop:
    """An event loop on a thread of its own, as a server's, for the subscriptions."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def subscribe(self, channel: str = "news") -> tuple[Subscription, int]:
        return get_backend().subscribe([channel], self.loop)

    def take(self, subscription: Subscription) -> list[tuple[str, str]]:
        """``(id, data)`` of what is buffered for ``subscription``, taken on its loop as a stream does
        (raises what ended it)."""

        async def take() -> list[tuple[str, str]]:
            got = []
            while (entry := subscription.pop()) is not None:
                assert str(entry[0]) == entry[1].id  # the position is the event's id, parsed once
                got.append((entry[1].id, entry[1].data or ""))
            return got

        return asyncio.run_coroutine_threadsafe(take(), self.loop).result(5)

    def received(self, subscription: Subscription, count: int) -> list[tuple[str, str]]:
        """The next ``count`` events for ``subscription`` (waits for them, 5 s at most)."""
        got: list[tuple[str, str]] = []

        def enough() -> bool:
            got.extend(self.take(subscription))
            return len(got) >= count

        assert wait_for(enough, timeout=5), got
        return got

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    reset_backend()  # stops this test's dispatcher
    running.close()


# History off: a MemoryFeed.


@pytest.fixture
def memory(settings) -> None:
    settings.DJANGO_SSE = {"HISTORY": False}


@pytest.mark.usefixtures("memory")
def test_history_off_ids_count_deliveries_and_a_subscription_starts_from_now(loop):
    # No django_db mark: any query, in publish or subscribe, fails the test.
    backend = get_backend()
    assert isinstance(backend, EmbeddedBackend) and isinstance(backend.feed, MemoryFeed)
    before = [publish("news", f"before {i}").id for i in range(2)]
    assert before == ["1", "2"]
    subscription, start = loop.subscribe()
    assert start == 2  # what was published before is not replayed
    publish("news", "a")
    publish("other", "elsewhere")  # takes an id too: ids count deliveries on every channel
    publish("news", "b")
    assert loop.received(subscription, 2) == [("3", "a"), ("5", "b")]


@pytest.mark.usefixtures("memory")
@pytest.mark.django_db(transaction=True)
def test_history_off_a_publish_in_a_rolled_back_transaction_is_sent_at_once(loop):
    # As documented (channels.rst, "History off"): there is no commit to wait for.
    subscription, _ = loop.subscribe()
    with pytest.raises(RuntimeError), transaction.atomic():
        publish("news", "sent anyway")
        assert loop.received(subscription, 1) == [("1", "sent anyway")]
        raise RuntimeError("roll back")


@pytest.mark.usefixtures("memory")
def test_history_off_starts_no_thread(loop):
    before = set(threading.enumerate())
    subscription, _ = loop.subscribe()
    publish("news", "x")
    loop.received(subscription, 1)
    started = {t.name for t in set(threading.enumerate()) - before}
    assert not any(name.startswith(THREAD_PREFIX) for name in started), started


# History on: a StoredFeed.

#: The tests of a StoredFeed commit, as the server's requests do.
stored = pytest.mark.django_db(transaction=True)


@stored
def test_history_on_events_reach_a_stream_at_commit_in_id_order(loop):
    backend = get_backend()
    assert isinstance(backend, EmbeddedBackend) and isinstance(backend.feed, StoredFeed)
    old = publish("news", "old")
    subscription, start = loop.subscribe()
    assert start == history.id_of(old)
    with transaction.atomic():
        first = publish("news", "first")
        second = publish("news", "second")
        assert loop.take(subscription) == []  # not before the commit
    third = publish("news", "third")
    assert loop.received(subscription, 3) == [
        (first.id, "first"),
        (second.id, "second"),
        (third.id, "third"),
    ]


@stored
def test_history_on_a_rolled_back_publish_is_never_sent(loop):
    subscription, _ = loop.subscribe()
    with pytest.raises(RuntimeError), transaction.atomic():
        publish("news", "rolled back")
        raise RuntimeError("roll back")
    after = publish("news", "after")
    assert loop.received(subscription, 1) == [(after.id, "after")]
    assert loop.take(subscription) == []


@stored
def test_history_on_a_failed_wakeup_is_logged_and_this_process_gets_the_event(loop, caplog, monkeypatch):
    backend = get_backend()
    assert isinstance(backend, EmbeddedBackend) and isinstance(backend.feed, StoredFeed)
    subscription, _ = loop.subscribe()

    def announce(position: int) -> None:
        raise OSError("the database went away")

    monkeypatch.setattr(backend.feed.dispatcher.wakeup, "announce", announce)
    with caplog.at_level(logging.WARNING, logger="django_sse"):
        event = publish("news", "still here")
    assert loop.received(subscription, 1) == [(event.id, "still here")]
    assert f"could not wake the other processes for event {event.id}" in caplog.text


@stored
def test_stop_ends_the_dispatcher_thread_it_started(loop):
    before = set(threading.enumerate())
    loop.subscribe()
    started = [t for t in set(threading.enumerate()) - before if t.name == f"{THREAD_PREFIX}-dispatcher"]
    assert len(started) == 1  # started by the first subscription
    get_backend().stop()
    started[0].join(5)
    assert not started[0].is_alive()


@stored
def test_subscriptions_are_sized_by_the_client_buffer_settings(loop, settings):
    settings.DJANGO_SSE = {"CLIENT_BUFFER": 2}
    subscription, _ = loop.subscribe()
    for i in range(3):  # one more than the buffer, nobody reading: a slow client
        publish("news", str(i))
    assert wait_for(lambda: get_backend().hub.slow_clients == 1, timeout=5)
    with pytest.raises(SlowClient, match="more than 2 events waiting"):
        loop.take(subscription)
