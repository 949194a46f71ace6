"""The dispatcher on its own: hand-over of this process's events, reading others' in id order,
and a failed read retried (backends/dispatcher.py)."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from django_sse import history
from django_sse.backends.dispatcher import RETRY_DELAY, Dispatcher
from django_sse.backends.wakeup import LocalWakeup
from django_sse.conf import get_settings
from django_sse.delivery.hub import Hub, Subscription
from django_sse.event import Event
from tests.sse_client import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class Setup:
    """A hub and its dispatcher, and one subscription on an event loop of its own (a server's)."""

    def __init__(self) -> None:
        self.hub = Hub()
        self.dispatcher = Dispatcher(self.hub, get_settings(), LocalWakeup, poll_interval=None)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.subscription = Subscription(self.hub, ["a"], 100, self.loop)

    def buffered(self) -> list[str]:
        """The data of what the subscription has buffered since last asked, taken on its loop."""

        async def take() -> list[str]:
            found = []
            while (entry := self.subscription.pop()) is not None:
                found.append(entry[1].data)
            return found

        return asyncio.run_coroutine_threadsafe(take(), self.loop).result(5)

    def received(self, count: int) -> list[str]:
        got: list[str] = []

        def enough() -> bool:
            got.extend(self.buffered())
            return len(got) >= count

        assert wait_for(enough, timeout=5), got
        return got

    def stop(self) -> None:
        self.dispatcher.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def setup():
    running = Setup()
    yield running
    running.stop()


def store(data: str, channel: str = "a") -> Event:
    return history.store(channel, Event(data=data))


def test_a_subscription_starts_after_the_newest_stored_event(setup):
    before = store("before")
    assert setup.dispatcher.add(setup.subscription) == history.id_of(before)
    assert len(setup.hub) == 1


def test_this_process_s_next_event_is_handed_over_at_once_without_a_read(setup, monkeypatch):
    store("before")  # the position is an id, not 0 (ids are not reset between tests)
    setup.dispatcher.add(setup.subscription)
    reads: list[object] = []

    def rows_after(*args: object, **kwargs: object) -> tuple[list[history.Row], bool]:
        reads.append(args)
        return [], False

    monkeypatch.setattr(history, "rows_after", rows_after)
    event = store("mine")
    assert setup.dispatcher.committed("a", event) is True
    assert setup.received(1) == ["mine"]
    assert reads == []


def test_an_event_after_a_gap_is_read_in_id_order_with_the_ones_before_it(setup):
    store("before")
    setup.dispatcher.add(setup.subscription)
    first = store("from another process")  # committed elsewhere: nobody handed it over
    second = store("mine")
    assert setup.dispatcher.committed("a", second) is False  # not the next id: the dispatcher reads
    assert setup.received(2) == ["from another process", "mine"]
    assert history.id_of(first) < history.id_of(second)


def test_a_failed_read_is_logged_and_retried_without_a_new_wake_up(setup, monkeypatch, caplog):
    setup.dispatcher.add(setup.subscription)
    real = history.newest_id
    failures: list[int] = []

    def failing_once():
        if not failures:
            failures.append(1)
            raise RuntimeError("the database went away")
        return real()

    monkeypatch.setattr(history, "newest_id", failing_once)
    store("one")
    with caplog.at_level(logging.ERROR, "django_sse"):
        setup.dispatcher.wake()  # the one wake-up: spent on the failure
        got = setup.received(1)
    assert got == ["one"]
    assert failures == [1]
    assert "reading new events failed; retrying" in caplog.text
    assert RETRY_DELAY <= 1.0  # the retry comes within a second, woken or not


class CountingWakeup(LocalWakeup):
    """Counts the dispatcher's waits: one more means it has looked and gone back to waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None) -> int | None:
        self.waits += 1
        return super().wait(timeout)


def test_an_idle_process_reads_nothing(setup, monkeypatch):
    wakeup = CountingWakeup()
    setup.dispatcher = Dispatcher(setup.hub, get_settings(), lambda: wakeup, poll_interval=None)
    store("before")
    setup.dispatcher.add(setup.subscription)  # starts the thread, which waits
    assert wait_for(lambda: wakeup.waits == 1, timeout=5)
    setup.subscription.close()
    reads: list[int] = []

    def newest_id() -> int:
        reads.append(1)
        return 0

    monkeypatch.setattr(history, "newest_id", newest_id)
    setup.dispatcher.wake()
    # Woken with no stream subscribed: it looks at the hub only, and waits again.
    assert wait_for(lambda: wakeup.waits == 2, timeout=5)
    assert reads == []
