"""An optional ASGI entry point: Django's own handler, with event streams sent straight to the server.

Use it in ``asgi.py`` instead of Django's ``get_asgi_application()``::

    from django_sse.asgi import get_asgi_application

    application = get_asgi_application()

Every request is handled by Django as before (middleware, views, signals);
only the body of an async :class:`~django_sse.EventStreamResponse` is sent
differently. Django's handler wakes the response's task for each chunk and
passes it through an async generator and its own send loop; here, when an
event is ready, a callback on the event loop encodes everything that is
waiting and hands it to the server's ``send()`` at once, with no task
switch: per delivered event that is less work than Django's own
``StreamingHttpResponse`` path. A ``send()`` that has to wait (the client
reads slowly) is finished before anything more is sent (back-pressure).
Sync streams (under ASGI they run on a thread anyway) and every other
response take Django's path.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import django
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler
from django.http.response import HttpResponseBase

from .delivery import bridge
from .delivery.records import CloseReason, StreamRecord
from .event import HEARTBEAT
from .response import BATCH_BYTES, EventStreamResponse, stream_failed

__all__ = ["ASGIHandler", "get_asgi_application"]

Send = Callable[[Mapping[str, Any]], Awaitable[None]]


def get_asgi_application() -> ASGIHandler:
    """Django's ``get_asgi_application()``, with django-sse's handler."""
    django.setup(set_prefix=False)
    return ASGIHandler()


class ASGIHandler(DjangoASGIHandler):
    """Django's ASGI handler; async event streams are sent by django-sse (see the module docstring)."""

    async def send_response(self, response: HttpResponseBase, send: Send) -> None:
        """Send ``response``: an async event stream straight from its events, any other as Django does."""
        if not isinstance(response, EventStreamResponse) or not response.is_async:
            await super().send_response(response, send)
            return
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": _headers(response)}
        )
        parts = response.parts()
        bridge.release_request_thread()  # as the response's own iteration would (see response.py)
        record = response.start_record()
        assert record is not None  # nothing else sends this response
        ended_by: BaseException | None = None
        source: bridge.AsyncSource | None = None
        writer: _Writer | None = None
        try:
            source = bridge.async_source(parts.events)
            writer = _Writer(source, parts.encoder, parts.heartbeat, send, parts.preamble, record)
            await writer.run()
        except Exception as exc:
            ended_by = exc
            if writer is None or not writer.send_failed:
                stream_failed(parts.name, exc)  # and the response ends normally: the client reconnects
        except BaseException as exc:  # cancelled: the client has gone
            ended_by = exc
            raise
        finally:
            try:
                if writer is not None:
                    writer.stop()
                if source is not None:
                    await source.aclose()
            finally:
                if writer is not None and writer.send_failed:
                    record.close(CloseReason.CLIENT_LEFT)
                else:
                    record.end(ended_by)
        await send({"type": "http.response.body"})


async def _awaiting(awaitable: Awaitable[None]) -> None:
    await awaitable


def _headers(response: HttpResponseBase) -> list[tuple[bytes, bytes]]:
    headers = [
        (name.encode("ascii") if isinstance(name, str) else name, value.encode("latin1"))
        for name, value in response.items()
    ]
    headers += [
        (b"Set-Cookie", c.output(header="").encode("ascii").strip()) for c in response.cookies.values()
    ]
    return headers


#: Per event loop, the writers to flush on its next turn.
_pending: dict[asyncio.AbstractEventLoop, list[_Writer]] = {}


def _flush_pending(loop: asyncio.AbstractEventLoop) -> None:
    for writer in _pending.pop(loop, ()):
        writer._flush()


class _Writer:
    """Sends a source's items from the callback that says they are ready, on the loop; no task of its own.

    ``run()`` waits until the source ends, fails, or the server's ``send()``
    fails. While a ``send()`` that had to wait is being finished, nothing
    else is sent; what arrived meanwhile follows it in one message.
    """

    def __init__(
        self,
        source: bridge.AsyncSource,
        encoder: Callable[[Any], bytes],
        heartbeat: float | None,
        send: Send,
        preamble: bytes,
        record: StreamRecord,
    ) -> None:
        self._source = source
        self._record = record
        #: Whether the server's ``send()`` raised: the connection is gone.
        self.send_failed = False
        self._head = preamble  # goes out with the first write
        self._encoder = encoder
        self._heartbeat = heartbeat
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._flush_scheduled = False
        self._sending: Coroutine[Any, Any, None] | None = None  # a send() that had to wait
        self._ended = False
        self._failure: Exception | None = None  # what ended the source, once what came before is sent
        self._last_write = self._loop.time()
        self._timer: asyncio.Handle | None = None

    async def run(self) -> None:
        self._source.listen(self._ready)
        if self._heartbeat is not None:
            self._timer = self._loop.call_at(self._last_write + self._heartbeat, self._beat)
        if self._head:
            self._write(b"")  # the preamble alone, at once: the headers go out now
        self._flush()
        await self._done

    def stop(self) -> None:
        self._source.listen(None)
        if self._timer is not None:
            self._timer.cancel()
        if self._sending is not None:
            self._sending.close()
            self._sending = None

    def _ready(self) -> None:
        # Everything ready by the loop's next turn goes in one send; and one callback flushes every
        # stream an event made ready (a publish readies thousands at once), not one callback each.
        if not self._flush_scheduled and self._sending is None and not self._done.done():
            self._flush_scheduled = True
            pending = _pending.get(self._loop)
            if pending is None:
                pending = _pending[self._loop] = []
                self._loop.call_soon(_flush_pending, self._loop)
            pending.append(self)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._sending is not None or self._done.done():
            return
        chunks: list[bytes] = []
        size = 0
        try:
            while size < BATCH_BYTES:
                item = self._source.poll()
                if item is bridge.NOT_READY:
                    break
                if item is bridge.END:
                    self._ended = True
                    break
                chunk = self._encoder(item)
                chunks.append(chunk)
                size += len(chunk)
        except Exception as exc:
            # What was taken before the failure still goes out, then the stream ends.
            self._failure, self._ended = exc, True
        if chunks:
            self._record.events += len(chunks)
            self._write(b"".join(chunks))
            if size >= BATCH_BYTES and not self._ended:
                self._ready()  # more may be waiting: after the server has had a turn
        elif self._ended:
            if self._head:
                self._write(b"")  # ended before any event: the preamble still goes out
            else:
                self._finish(self._failure)

    def _write(self, body: bytes) -> None:
        if self._head:
            body, self._head = self._head + body, b""
        self._last_write = self._loop.time()
        self._record.bytes += len(body)
        sending = self._send({"type": "http.response.body", "body": body, "more_body": True})
        if inspect.iscoroutine(sending):
            self._step(sending)
        else:  # some other awaitable: let asyncio run it
            self._step(_awaiting(sending))

    def _step(self, sending: Coroutine[Any, Any, None]) -> None:
        # Runs the server's send() as a task would, without one: most of the time it completes
        # at once (uvicorn unless the client is behind, daphne always).
        try:
            waiting_for = sending.send(None)
        except StopIteration:
            waited, self._sending = self._sending is not None, None
            if self._ended:
                self._finish(self._failure)
            elif waited:
                self._ready()  # what arrived while the send waited (a send that did not wait: nothing)
            return
        except BaseException as exc:
            self._sending = None
            self.send_failed = True
            self._finish(exc)
            return
        self._sending = sending
        if waiting_for is None:  # a bare yield, as asyncio.sleep(0) does
            self._loop.call_soon(self._step, sending)
        elif asyncio.isfuture(waiting_for):
            waiting_for._asyncio_future_blocking = False  # as asyncio.Task does when it takes it on
            waiting_for.add_done_callback(lambda _: self._resume(sending))
        else:
            sending.close()
            self._sending = None
            self._finish(RuntimeError(f"send() awaited {waiting_for!r}, which is not an asyncio future"))

    def _resume(self, sending: Coroutine[Any, Any, None]) -> None:
        if self._sending is sending:  # not stopped meanwhile
            self._step(sending)

    def _beat(self) -> None:
        # One timer per stream, re-armed only when it fires: writes just move the next deadline.
        assert self._heartbeat is not None
        if self._done.done():
            return
        now = self._loop.time()
        if now >= self._last_write + self._heartbeat:
            if self._sending is None:
                self._write(HEARTBEAT)
            else:  # the client is not reading: no heartbeat is needed to notice it
                self._last_write = now
        self._timer = self._loop.call_at(self._last_write + self._heartbeat, self._beat)

    def _finish(self, error: BaseException | None) -> None:
        if self._done.done():
            return
        if error is None:
            self._done.set_result(None)
        else:
            self._done.set_exception(error)
