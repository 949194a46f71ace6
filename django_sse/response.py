"""``EventStreamResponse``: a streaming response that sends each event the moment it exists."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from django.http import HttpResponseBase, StreamingHttpResponse

from . import bridge
from .conf import get_settings
from .event import HEARTBEAT, encode, encode_comment, encode_retry

__all__ = ["DEFAULT", "EventStreamResponse"]

CONTENT_TYPE = "text/event-stream"


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


#: Use the value from the ``DJANGO_SSE`` setting.
DEFAULT: Any = _Default()


class EventStreamResponse(StreamingHttpResponse):
    """A ``text/event-stream`` response over a sync or async iterable of events.

    Items may be :class:`~django_sse.Event` instances, ``str`` (a data-only
    event) or JSON-serialisable objects. The configured ``retry:`` (or a
    comment) is sent at once so that headers reach the client before the
    first event; a comment heartbeat follows every ``heartbeat`` seconds
    without an event. Served by an ASGI or a WSGI server, either kind of
    iterable streams one event at a time.
    """

    def __init__(
        self,
        events: Iterable[Any] | AsyncIterable[Any],
        *,
        retry: int | None = DEFAULT,
        heartbeat: float | None = DEFAULT,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status=status, headers=headers, content_type=CONTENT_TYPE)
        conf = get_settings()
        retry = conf.retry if retry is DEFAULT else retry
        self._prepare(
            events,
            encode,
            preamble=encode_comment() if retry is None else encode_retry(retry),
            heartbeat=conf.heartbeat if heartbeat is DEFAULT else heartbeat,
        )
        _set_stream_headers(self)

    @classmethod
    def adopt(cls, response: StreamingHttpResponse) -> EventStreamResponse:
        """Take over a hand-built ``StreamingHttpResponse`` of already-encoded chunks.

        Its status, headers, cookies and attributes are kept; its chunks are
        sent as they are, with a comment first and heartbeats when idle.
        """
        adopted = cls.__new__(cls)
        # Copy everything a view or middleware may have set on the response.
        adopted.__dict__.update(response.__dict__)
        # Django's streaming_content hides the iterator behind map(), and with
        # it close(): take the iterator itself, and close it ourselves, on
        # the thread that runs it.
        iterator = response._iterator  # type: ignore[attr-defined]
        own_close = getattr(iterator, "close", None)
        adopted._resource_closers = [c for c in response._resource_closers if c != own_close]
        adopted._prepare(
            iterator, adopted.make_bytes, preamble=encode_comment(), heartbeat=get_settings().heartbeat
        )
        _set_stream_headers(adopted)
        return adopted

    def _prepare(
        self,
        source: Iterable[Any] | AsyncIterable[Any],
        encoder: Callable[[Any], bytes],
        *,
        preamble: bytes,
        heartbeat: float | None,
    ) -> None:
        self._source = source
        self._encoder = encoder
        self._preamble = preamble
        self._heartbeat = heartbeat
        self._chunks: Iterator[bytes] | None = None
        self.is_async = bridge.is_async_iterable(source)

    # Django's StreamingHttpResponse API, for middleware that wraps the stream.

    @property
    def streaming_content(self) -> Iterator[bytes] | AsyncIterator[bytes]:  # type: ignore[override]
        return self.__aiter__() if self.is_async else self._sync_chunks()

    @streaming_content.setter
    def streaming_content(self, value: Iterable[Any] | AsyncIterable[Any]) -> None:
        # A wrapper of our own chunks: heartbeats and preamble are in it already.
        self._prepare(value, self.make_bytes, preamble=b"", heartbeat=None)

    def _set_streaming_content(self, value: Any) -> None:
        # Called by StreamingHttpResponse.__init__ with an empty tuple; the
        # real source is set by _prepare.
        pass

    # Consumed by servers: ASGI through __aiter__, WSGI through __iter__.

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._preamble:
            yield self._preamble
        source = bridge.async_source(self._source)
        try:
            while (item := await source.get(self._heartbeat)) is not bridge.END:
                yield HEARTBEAT if item is bridge.IDLE else self._encoder(item)
        finally:
            await source.aclose()

    def __iter__(self) -> Iterator[bytes]:
        self._chunks = self._sync_chunks()
        return self._chunks

    def _sync_chunks(self) -> Iterator[bytes]:
        if self._preamble:
            yield self._preamble
        source = bridge.sync_source(self._source)
        try:
            while (item := source.get(self._heartbeat)) is not bridge.END:
                yield HEARTBEAT if item is bridge.IDLE else self._encoder(item)
        finally:
            source.close()

    def close(self) -> None:
        # WSGI servers call close() when the client has gone; the generator
        # they were iterating is ours to close.
        if self._chunks is not None:
            self._chunks.close()
        super().close()

    def getvalue(self) -> bytes:
        raise AttributeError("An event stream may never end: iterate over it instead of calling getvalue().")


def _set_stream_headers(response: HttpResponseBase) -> None:
    """Headers that keep caches and proxies from holding events back."""
    response.headers.setdefault("Cache-Control", "no-cache")
    response.headers["X-Accel-Buffering"] = "no"
    response.headers.pop("Content-Length", None)


def is_event_stream(response: HttpResponseBase) -> bool:
    """True for a response whose content type is ``text/event-stream``."""
    content_type = response.get("Content-Type", "")
    return content_type.split(";", 1)[0].strip().lower() == CONTENT_TYPE
