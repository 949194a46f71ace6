"""django_sse.asgi's writer on its own: what it hands to send(), when, and how a stream ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from django_sse import Event, EventStreamResponse
from django_sse.asgi import ASGIHandler
from django_sse.stats import get_stats


class Recorder:
    """An ASGI send(): the messages, in order; optionally one that waits until released."""

    def __init__(self, *, wait_on: int | None = None, fail_on: int | None = None) -> None:
        self.messages: list[dict] = []
        self.wait_on, self.fail_on = wait_on, fail_on
        self.release: asyncio.Future[None] | None = None
        self.waiting = asyncio.Event()
        self.wrote = asyncio.Event()  # set at each body write

    async def __call__(self, message: Mapping[str, Any]) -> None:
        self.messages.append(dict(message))
        if message["type"] == "http.response.body":
            self.wrote.set()
        index = len(self.messages) - 1
        if index == self.fail_on:
            raise OSError("the client has gone")
        if index == self.wait_on:
            self.release = asyncio.get_running_loop().create_future()
            self.waiting.set()
            await self.release

    async def until(self, writes: int) -> None:
        """Wait (bounded) until ``writes`` body messages have been sent."""
        while len(self.bodies()) < writes:
            self.wrote.clear()
            await asyncio.wait_for(self.wrote.wait(), 5)

    def bodies(self) -> list[bytes]:
        return [m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"]


def closed(before: dict[str, int]) -> dict[str, int]:
    """Streams closed since ``before``, by reason (counted as they end; the signal follows in a task)."""
    now = get_stats().closed
    return {reason: n - before.get(reason, 0) for reason, n in now.items() if n - before.get(reason, 0)}


def test_events_ready_together_go_in_one_message_after_the_preamble():
    async def main():
        ready = asyncio.Event()

        async def events():
            yield Event(data="a")
            yield Event(data="b")  # yielded back to back: taken together
            await ready.wait()
            yield Event(data="c")

        send = Recorder()
        response = EventStreamResponse(events(), retry=1000, heartbeat=None)
        task = asyncio.create_task(ASGIHandler().send_response(response, send))
        await send.until(2)  # the preamble, then a and b
        ready.set()
        await asyncio.wait_for(task, 5)
        return send

    send = async_to_sync(main)()
    assert send.messages[0]["type"] == "http.response.start"
    bodies = send.bodies()
    assert bodies[0] == b"retry: 1000\n\n"  # alone, at once: the headers go out with it
    assert bodies[1] == b"data: a\n\ndata: b\n\n"  # ready together: one message
    assert bodies[2] == b"data: c\n\n"
    assert send.messages[-1] == {"type": "http.response.body"}  # the end: no more_body


def test_a_send_that_waits_holds_the_rest_back_and_it_follows_in_one_message():
    async def main():
        more = asyncio.Event()

        produced = asyncio.Event()

        async def events():
            yield Event(data="1")
            await more.wait()
            for n in range(2, 5):
                yield Event(data=str(n))
            produced.set()  # read ahead to the end: every event is waiting for the writer

        send = Recorder(wait_on=2)  # the write of event 1 waits: a client that reads slowly
        response = EventStreamResponse(events(), retry=None, heartbeat=None)
        task = asyncio.create_task(ASGIHandler().send_response(response, send))
        await asyncio.wait_for(send.waiting.wait(), 5)
        more.set()
        await asyncio.wait_for(produced.wait(), 5)  # all arrived while the send waits
        held = len(send.bodies())  # and nothing more was sent meanwhile
        assert send.release is not None
        send.release.set_result(None)
        await asyncio.wait_for(task, 5)
        return held, send

    held, send = async_to_sync(main)()
    assert held == 2  # the preamble, and event 1 (whose send waited)
    # The three events that arrived meanwhile follow in one message.
    assert send.bodies()[:3] == [b":\n\n", b"data: 1\n\n", b"data: 2\n\ndata: 3\n\ndata: 4\n\n"]


def test_a_failing_stream_sends_what_came_before_ends_cleanly_and_is_error(caplog):
    async def events():
        yield Event(data="before")
        raise RuntimeError("boom")

    before = get_stats().closed
    send = Recorder()
    with caplog.at_level(logging.ERROR, "django_sse"):
        response = EventStreamResponse(events(), retry=None, heartbeat=None)
        async_to_sync(ASGIHandler().send_response)(response, send)
    assert b"data: before\n\n" in b"".join(send.bodies())
    assert send.messages[-1] == {"type": "http.response.body"}
    assert "failed" in caplog.text
    assert closed(before) == {"error": 1}


def test_a_send_that_fails_is_the_client_leaving_not_an_error(caplog):
    async def events():
        n = 0
        while True:
            yield Event(data=str(n))
            n += 1
            await asyncio.sleep(0)  # the stream's own pacing: one event per loop turn

    before = get_stats().closed
    send = Recorder(fail_on=2)
    with caplog.at_level(logging.ERROR, "django_sse"):
        response = EventStreamResponse(events(), retry=None, heartbeat=None)
        async_to_sync(ASGIHandler().send_response)(response, send)
    assert closed(before) == {"client_left": 1}
    assert "failed" not in caplog.text


@pytest.mark.parametrize("heartbeat", [0.05])
def test_an_idle_stream_gets_heartbeats(heartbeat):
    async def main():
        async def events():
            await asyncio.Event().wait()  # never an event
            yield Event(data="never")

        send = Recorder()
        response = EventStreamResponse(events(), retry=None, heartbeat=heartbeat)
        task = asyncio.create_task(ASGIHandler().send_response(response, send))
        await send.until(3)  # the preamble, then two heartbeats
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return send

    send = async_to_sync(main)()
    assert send.bodies()[:3] == [b":\n\n", b":\n\n", b":\n\n"]  # the preamble comment, then heartbeats
