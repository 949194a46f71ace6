"""``EventStreamResponse``: a streaming response that sends each event the moment it exists."""

from __future__ import annotations

import contextlib
import contextvars
import enum
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
)
from typing import Any, Final, NamedTuple

from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse

from .conf import get_settings
from .delivery import bridge
from .delivery.records import StreamRecord
from .event import HEARTBEAT, encode, encode_comment, encode_retry
from .limits import StreamSlot

__all__ = ["DEFAULT", "Default", "EventStreamResponse", "StreamParts", "stream_failed"]

logger = logging.getLogger("django_sse")

#: Set by :mod:`django_sse.testing`: a failure inside a stream is raised to its reader too, not only
#: logged, so that a test sees it.
raise_failures: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "django_sse_raise_failures", default=False
)

CONTENT_TYPE = "text/event-stream"
#: Events already waiting are sent together, up to this many bytes per ASGI message.
BATCH_BYTES = 2**16


class Default(enum.Enum):
    """The type of :data:`DEFAULT`: an enum of one, so that type checkers narrow ``is DEFAULT``."""

    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "DEFAULT"


#: Use the value from the ``DJANGO_SSE`` setting.
DEFAULT: Final = Default.DEFAULT


class StreamParts(NamedTuple):
    """What an :class:`EventStreamResponse` sends, before it is encoded (see ``parts()``)."""

    #: The iterable of events (sync or async).
    events: Iterable[Any] | AsyncIterable[Any]
    #: Turns one item of ``events`` into bytes.
    encoder: Callable[[Any], bytes]
    #: Bytes sent first (``retry:`` or a comment).
    preamble: bytes
    #: Seconds without an event before a heartbeat, or ``None``.
    heartbeat: float | None
    #: What logs call the stream: its view's dotted name, or ``"EventStreamResponse"``.
    name: str


class EventStreamResponse(StreamingHttpResponse):
    """A ``text/event-stream`` response over a sync or async iterable of events.

    Items may be :class:`~django_sse.Event` instances, ``str`` (a data-only
    event) or JSON-serialisable objects. The configured ``retry:`` (or a
    comment) is sent at once so that headers reach the client before the
    first event; a comment heartbeat follows every ``heartbeat`` seconds
    without an event. Served by an ASGI or a WSGI server, either kind of
    iterable streams one event at a time.

    ``retry`` (milliseconds) and ``heartbeat`` (seconds) default to the
    ``DJANGO_SSE`` setting; ``None`` disables either. ``status`` and
    ``headers`` are as for any Django response.
    """

    #: The view class that made it: the sender of :mod:`django_sse.signals` (else this class).
    stream_view: type | None = None
    #: The request it answers, passed to the signals' receivers (set by ``EventStreamView``).
    stream_request: HttpRequest | None = None
    #: The events it was made with, before a middleware wrapped them: they know their channels.
    _origin: object = None
    _recorded = False

    def __init__(
        self,
        events: Iterable[Any] | AsyncIterable[Any],
        *,
        retry: int | Default | None = DEFAULT,
        heartbeat: float | Default | None = DEFAULT,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status=status, headers=headers, content_type=CONTENT_TYPE)
        conf = get_settings()
        retry = conf.retry if retry is DEFAULT else retry
        self._origin = events
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
        adopted._resource_closers = [  # type: ignore[attr-defined]
            c
            for c in response._resource_closers  # type: ignore[attr-defined]
            if c != own_close
        ]
        adopted._origin = iterator
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
        self._chunks: Generator[bytes, None, None] | None = None
        if not hasattr(self, "stream_name"):
            #: What logs call this stream; EventStreamView sets its own dotted name.
            self.stream_name = "EventStreamResponse"
        self.is_async = bridge.is_async_iterable(source)
        if not hasattr(self, "_slot"):
            # Counted as open (MAX_STREAMS) until closed, as Django and WSGI servers do at the end.
            self._slot = StreamSlot()
            self._resource_closers.append(self._slot.release)  # type: ignore[attr-defined]

    # Django's StreamingHttpResponse API, for middleware that wraps the stream.

    @property
    def streaming_content(self) -> Iterator[bytes] | AsyncIterator[bytes]:
        """The encoded stream, for middleware that wraps it; setting it sends the wrapper's chunks as-is."""
        return self.__aiter__() if self.is_async else _sync_chunks(self.parts(), self.start_record())

    @streaming_content.setter
    def streaming_content(self, value: Iterable[Any] | AsyncIterable[Any]) -> None:
        # A wrapper of our own chunks: heartbeats and preamble are in it already.
        self._prepare(value, self.make_bytes, preamble=b"", heartbeat=None)

    def parts(self) -> StreamParts:
        """The events, encoder, preamble and heartbeat this response streams (for test helpers)."""
        # Bound when iteration is requested, so that a middleware that wraps
        # streaming_content and sets it back does not make the stream read itself.
        return StreamParts(self._source, self._encoder, self._preamble, self._heartbeat, self.stream_name)

    # Consumed by servers: ASGI through __aiter__, WSGI through __iter__.

    def start_record(self) -> StreamRecord | None:
        """Start counting this stream (:mod:`django_sse.stats`), once: ``None`` after the first call.

        Called by the code that sends the response; a middleware's wrapper, sent around
        the response's own chunks, is counted once.
        """
        if self._recorded:
            return None
        self._recorded = True
        return StreamRecord(
            self.stream_name, self.stream_view or type(self), self._origin, request=self.stream_request
        )

    def __aiter__(self) -> AsyncGenerator[bytes, None]:
        return _async_chunks(self.parts(), self.start_record())

    def __iter__(self) -> Iterator[bytes]:
        self._chunks = _sync_chunks(self.parts(), self.start_record())
        return self._chunks

    def close(self) -> None:
        """Close the stream (the generator too) and send ``request_finished``."""
        # WSGI servers call close() when the client has gone; the generator
        # they were iterating is ours to close.
        if self._chunks is not None:
            self._chunks.close()
        super().close()

    def getvalue(self) -> bytes:
        """Refused: an event stream may never end."""
        raise AttributeError("An event stream may never end: iterate over it instead of calling getvalue().")


async def _async_chunks(parts: StreamParts, record: StreamRecord | None) -> AsyncGenerator[bytes, None]:
    # Every middleware has seen the response by now: the thread Django keeps for the request
    # (and its database connection) would only wait for the stream to end.
    bridge.release_request_thread()
    encoder, heartbeat = parts.encoder, parts.heartbeat
    with _ending(parts.name, record):
        if parts.preamble:
            _count(record, 0, parts.preamble)
            yield parts.preamble  # the headers go out now (daphne sends none before a body)
        source = bridge.async_source(parts.events)
        try:
            while (item := await source.get(heartbeat)) is not bridge.END:
                if item is bridge.IDLE:
                    _count(record, 0, HEARTBEAT)
                    yield HEARTBEAT
                    continue
                chunks = [encoder(item)]
                size = len(chunks[0])
                # Events that are there already (a channel stream's buffer) go out together: one
                # write instead of several, up to the size of one ASGI body chunk of Django's.
                try:
                    while size < BATCH_BYTES and (item := source.take_ready()) is not bridge.NOT_READY:
                        chunks.append(encoder(item))
                        size += len(chunks[-1])
                except Exception:
                    body = b"".join(chunks)
                    _count(record, len(chunks), body)
                    yield body  # what was taken before the failure still goes out
                    raise
                body = b"".join(chunks)
                if record is not None:  # inline: once per batch, the hot path
                    record.events += len(chunks)
                    record.bytes += len(body)
                yield body
        finally:
            await source.aclose()


def _sync_chunks(parts: StreamParts, record: StreamRecord | None) -> Generator[bytes, None, None]:
    encoder, heartbeat = parts.encoder, parts.heartbeat
    with _ending(parts.name, record):
        if parts.preamble:
            _count(record, 0, parts.preamble)
            yield parts.preamble
        source = bridge.sync_source(parts.events)
        try:
            while (item := source.get(heartbeat)) is not bridge.END:
                if item is bridge.IDLE:
                    _count(record, 0, HEARTBEAT)
                    yield HEARTBEAT
                else:
                    chunk = encoder(item)
                    _count(record, 1, chunk)
                    yield chunk
        finally:
            source.close()


@contextlib.contextmanager
def _ending(name: str, record: StreamRecord | None) -> Iterator[None]:
    """How both loops end: a failure is logged and the response ends normally (so that the client
    reconnects); whatever ended it goes on the stream's record."""
    ended_by: BaseException | None = None
    try:
        yield
    except Exception as exc:
        ended_by = exc
        stream_failed(name, exc)
        if raise_failures.get():
            raise
    except BaseException as exc:  # cancelled or closed by the server (GeneratorExit): the client has gone
        ended_by = exc
        raise
    finally:
        if record is not None:
            record.end(ended_by)


def _count(record: StreamRecord | None, events: int, body: bytes) -> None:
    if record is not None:
        record.events += events
        record.bytes += len(body)


def stream_failed(name: str, error: BaseException) -> None:
    """Log a failure inside a stream, once; the caller then ends the response cleanly.

    A response cut off without its end (daphne's, when the application raises) leaves the
    browser's ``EventSource`` open and silent, never reconnecting; a response that ends does
    reconnect, and resumes after its ``Last-Event-ID``.
    """
    logger.error(
        "django-sse: the stream of %s failed; ending it (the client reconnects)", name, exc_info=error
    )


def _set_stream_headers(response: HttpResponseBase) -> None:
    """Headers that keep caches and proxies from holding events back."""
    response.headers.setdefault("Cache-Control", "no-cache")
    response.headers["X-Accel-Buffering"] = "no"
    response.headers.pop("Content-Length", None)


def is_event_stream(response: HttpResponseBase) -> bool:
    """True for a response whose content type is ``text/event-stream``."""
    content_type = response.get("Content-Type", "")
    return content_type.split(";", 1)[0].strip().lower() == CONTENT_TYPE
