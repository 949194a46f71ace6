"""Channel streams' start: a client that leaves while the stream subscribes leaves nothing registered."""

from __future__ import annotations

import asyncio
import threading

import pytest

from django_sse.backends import get_backend, open_subscriptions
from django_sse.delivery.channel_stream import ChannelStream
from tests.sse_client import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_stream_closed_while_it_subscribes_leaves_no_subscription(monkeypatch):
    backend = get_backend()
    entered, release = threading.Event(), threading.Event()
    subscribe = backend.subscribe

    def slow_subscribe(*args, **kwargs):
        entered.set()
        release.wait(10)
        return subscribe(*args, **kwargs)

    monkeypatch.setattr(backend, "subscribe", slow_subscribe)

    async def run():
        stream = ChannelStream(["a"], None, own=None, initial=None, reset_event="reset")
        reading = asyncio.ensure_future(stream.get(None))
        assert await asyncio.to_thread(entered.wait, 10)
        # The client leaves: the server cancels the response while subscribe() runs on its thread.
        reading.cancel()
        await stream.aclose()
        release.set()

    asyncio.run(run())
    # subscribe() finished after the stream had closed: it must not stay registered.
    assert wait_for(lambda: open_subscriptions() == 0, timeout=5)
