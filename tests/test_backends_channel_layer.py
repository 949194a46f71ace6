"""ChannelLayerBackend on its own, in one process, through channels' real InMemoryChannelLayer:
its settings, group names, delivery with and without transactions, a failing layer, the filter
for channels_redis's reconnect tracebacks, and stop() (backends/channel_layer.py).

The server tests (test_redis.py) cover delivery between processes through a real Redis, and outages.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from channels.layers import BaseChannelLayer
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from hypothesis import given
from hypothesis import strategies as st

from django_sse import PublishError, history, publish
from django_sse.backends import get_backend, reset_backend
from django_sse.backends.channel_layer import CONNECTION_ERRORS, ChannelLayerBackend, group_name
from django_sse.channel_names import MAX_LENGTH
from django_sse.delivery.bridge import THREAD_PREFIX
from django_sse.delivery.hub import REVOCATION_CHANNEL, Closed, Unavailable
from django_sse.event import Event
from django_sse.models import StoredEvent

BACKEND = "django_sse.backends.channel_layer.ChannelLayerBackend"
IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


class Reader:
    """A stream's reader on an event loop of its own (a server's): takes what its subscription has
    whenever the subscription says so (``on_ready``), as a stream does."""

    def __init__(self, backend: ChannelLayerBackend, channels: list[str]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.subscription, self.position = backend.subscribe(channels, self.loop)
        self.events: list[tuple[int | None, Any]] = []  # (id, data)
        self.ended: Closed | None = None
        self.changed = threading.Condition()
        self.loop.call_soon_threadsafe(setattr, self.subscription, "on_ready", self._take)
        self.loop.call_soon_threadsafe(self._take)  # anything that came before

    def _take(self) -> None:  # on self.loop
        with self.changed:
            try:
                while (entry := self.subscription.pop()) is not None:
                    self.events.append((entry[0], entry[1].data))
            except Closed as failure:
                self.ended = failure
            self.changed.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def stop(self) -> None:
        self.subscription.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Setup:
    """The backend on the in-memory layer, made with a test's ``DJANGO_SSE`` keys, and its readers."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.before = set(threading.enumerate())
        self.readers: list[Reader] = []
        self.backend: ChannelLayerBackend | None = None

    def start(self, **options: object) -> ChannelLayerBackend:
        self.settings.CHANNEL_LAYERS = IN_MEMORY
        self.settings.DJANGO_SSE = {"BACKEND": BACKEND, **options}
        backend = get_backend()
        assert isinstance(backend, ChannelLayerBackend)
        self.backend = backend
        return backend

    def reader(self, channels: list[str]) -> Reader:
        assert self.backend is not None
        self.readers.append(Reader(self.backend, channels))
        return self.readers[-1]

    def new_threads(self, name: str) -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t not in self.before and t.name == name]

    def stop(self) -> None:
        for reader in self.readers:
            reader.stop()
        reset_backend()  # stops the backend: the listener ends too
        assert not [t for t in self.new_threads(f"{THREAD_PREFIX}-layer") if t.is_alive()]


@pytest.fixture
def setup(settings: Any) -> Iterator[Setup]:
    running = Setup(settings)
    yield running
    running.stop()


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"HISTORY": False}, ImproperlyConfigured, "needs history"),
        ({"CHANNEL_LAYER": "elsewhere"}, LookupError, "'elsewhere'"),
    ],
)
def test_settings_it_cannot_work_with_are_refused(
    setup: Setup, options: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        setup.start(**options)


def test_a_channel_s_group_is_prefixed_and_revocations_have_their_own() -> None:
    assert group_name("news") == "django-sse.news"
    assert group_name(REVOCATION_CHANNEL) == "django-sse-revoke"
    assert BaseChannelLayer().require_valid_group_name(group_name(REVOCATION_CHANNEL))


@given(st.from_regex(rf"[A-Za-z0-9_.\-]{{1,{MAX_LENGTH}}}", fullmatch=True))
def test_every_channel_s_group_name_is_a_valid_channels_group_name(channel: str) -> None:
    assert BaseChannelLayer().require_valid_group_name(group_name(channel))  # raises TypeError if not
    assert group_name(channel) != group_name(REVOCATION_CHANNEL)


with_database = pytest.mark.django_db(transaction=True)  # publishes commit: on_commit runs


@with_database
def test_events_reach_a_subscription_of_this_process_in_id_order(setup: Setup) -> None:
    setup.start()
    reader = setup.reader(["news"])
    published = [publish("news", {"n": n}) for n in range(3)]
    assert reader.wait(lambda: len(reader.events) == 3), reader.events
    ids = [int(event.id or 0) for event in published]
    assert [position for position, _ in reader.events] == ids
    assert reader.position < ids[0] < ids[1] < ids[2]
    assert [data for _, data in reader.events] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    assert reader.ended is None


@with_database
def test_in_a_transaction_events_are_delivered_at_commit_and_never_when_rolled_back(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = setup.start()
    reader = setup.reader(["news"])
    sent: list[tuple[str, dict[str, object]]] = []
    real_send = backend.layer.group_send

    async def group_send(group: str, message: dict[str, object]) -> None:
        sent.append((group, message))
        await real_send(group, message)

    monkeypatch.setattr(backend.layer, "group_send", group_send)
    with pytest.raises(RuntimeError), transaction.atomic():
        publish("news", "rolled back")
        raise RuntimeError
    with transaction.atomic():
        committed = publish("news", "committed")
        assert sent == []  # nothing announced yet, to any process
        assert reader.events == []
    assert reader.wait(lambda: len(reader.events) == 1), reader.events
    assert reader.events == [(int(committed.id or 0), "committed")]
    assert sent == [("django-sse.news", {"type": "sse.event", "id": committed.id, "channel": "news"})]
    publish("news", "after")  # anything rolled back would have come before it, in id order
    assert reader.wait(lambda: len(reader.events) == 2), reader.events
    assert [data for _, data in reader.events] == ["committed", "after"]


@with_database
def test_a_failing_layer_ends_streams_and_publish_raises_after_storing(
    setup: Setup, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = setup.start(PING_INTERVAL=60)  # no ping comes back during the test to end the outage
    reader = setup.reader(["news"])

    async def group_send(group: str, message: dict[str, object]) -> None:
        raise ConnectionError("Redis is gone")

    monkeypatch.setattr(backend.layer, "group_send", group_send)
    with caplog.at_level(logging.WARNING, "django_sse"):
        with pytest.raises(PublishError) as first:
            publish("news", {"n": 1})
        with pytest.raises(PublishError):
            publish("news", {"n": 2})
    stored = StoredEvent.objects.get(id=int(first.value.event.id or 0))
    assert (stored.channel, stored.data) == ("news", '{"n": 1}')
    assert "the channel layer is unavailable" in str(first.value)
    assert (backend.available, backend.outages) == (False, 1)
    # The stream ended so that its client reconnects and replays. Whether it got the first event
    # before that is a race (handed over at once, or read back by the dispatcher after the end).
    assert reader.wait(lambda: reader.ended is not None)
    assert isinstance(reader.ended, Unavailable)
    assert [data for _, data in reader.events] in ([], ['{"n": 1}'])
    warnings = [r for r in caplog.records if "the channel layer is unavailable" in r.getMessage()]
    assert len(warnings) == 1, caplog.text


def record(error: BaseException | None) -> logging.LogRecord:
    exc_info = None if error is None else (type(error), error, error.__traceback__)
    return logging.LogRecord("channels_redis.core", logging.ERROR, __file__, 1, "failed", None, exc_info)


def caused_by(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


RedisConnectionError = type("ConnectionError", (Exception,), {})  # as redis.exceptions': no OSError


@pytest.mark.parametrize(
    ("error", "dropped"),
    [
        (ConnectionError("refused"), True),
        (caused_by(RuntimeError("reconnect failed"), OSError("refused")), True),
        (asyncio.TimeoutError(), True),
        (RedisConnectionError(), True),
        (ValueError("a bug"), False),
        (None, False),
    ],
)
def test_connection_errors_are_dropped_and_other_records_pass(
    error: BaseException | None, dropped: bool
) -> None:
    before = CONNECTION_ERRORS.dropped
    assert CONNECTION_ERRORS.filter(record(error)) is not dropped
    assert CONNECTION_ERRORS.dropped == before + dropped


@with_database
def test_stop_ends_the_dispatcher_and_the_listener_and_leaves_the_groups(setup: Setup) -> None:
    backend = setup.start()
    setup.reader(["news"])  # the first subscription starts the dispatcher and the listener
    started = setup.new_threads(f"{THREAD_PREFIX}-dispatcher") + setup.new_threads(f"{THREAD_PREFIX}-layer")
    assert len(started) == 2
    layer = backend.layer
    assert backend._channel_name in layer.groups[group_name("news")]
    backend.stop()
    for thread in started:
        thread.join(5)
    assert not [thread for thread in started if thread.is_alive()]
    assert group_name("news") not in layer.groups and group_name(REVOCATION_CHANNEL) not in layer.groups


@with_database
def test_a_publish_through_a_stopped_backend_raises_publish_error(setup: Setup) -> None:
    # As an on_commit publish does once its backend was replaced (a DJANGO_SSE change).
    backend = setup.start()
    setup.reader(["news"])  # the listener runs
    backend.stop()
    event = history.store("news", Event(data="late"))
    with pytest.raises(PublishError, match="the backend has stopped"):
        backend.publish("news", event)
