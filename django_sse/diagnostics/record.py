"""The recorder of ``manage.py sse_check``: what arrives over one connection to an event stream, and when.

It connects the way a browser's ``EventSource`` does, with the standard
library only (``http.client``, ``ssl``, ``zlib``; ``brotli`` if installed),
undoes the ``Content-Encoding`` as bytes arrive and notes the arrival time
of each byte, event and comment. It judges nothing: :mod:`.judge` does.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..event import Event, EventParser
from .view import HELLO_EVENT

__all__ = [
    "DEFAULT_DURATION",
    "RECONNECT_WAIT",
    "Arrival",
    "Decoder",
    "Recording",
    "connect",
    "record",
    "run",
]

#: Seconds read from a stream that is not the diagnostic stream, unless a duration is given.
DEFAULT_DURATION = 10.0
#: Seconds to wait for the first event after reconnecting.
RECONNECT_WAIT = 5.0


@dataclass
class Arrival:
    """An event, and when it arrived (seconds after the request was sent)."""

    at: float
    event: Event

    def json(self) -> Any:
        """The event's data decoded as JSON, or ``None`` if it is not JSON."""
        try:
            return json.loads(self.event.data)
        except ValueError:
            return None


@dataclass
class Recording:
    """What arrived over one connection, and when (seconds after the request was sent)."""

    url: str
    wall_start: float = 0.0  # time.time() when the request was sent
    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    headers_at: float | None = None
    first_byte_at: float | None = None
    last_byte_at: float | None = None
    events: list[Arrival] = field(default_factory=list)
    comments: list[float] = field(default_factory=list)
    retry: int | None = None
    last_event_id: str = ""
    body_bytes: int = 0  # after decompression
    encoding: str | None = None
    members: int = 0  # gzip members
    undecodable: str | None = None
    preview: bytes = b""  # the start of a non-event-stream body
    end: str = "open"  # eof: the body ended; cut: the connection broke; timeout: we stopped; error
    end_at: float | None = None
    error: str | None = None

    def header(self, name: str) -> str | None:
        """The response header ``name`` (any case), its values joined by ``", "``; ``None`` if absent."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    @property
    def hello(self) -> dict[str, Any] | None:
        """The diagnostic stream's first event, if this is the diagnostic stream."""
        for arrival in self.events[:1]:
            data = arrival.json()
            if arrival.event.event == HELLO_EVENT and isinstance(data, dict) and "diagnostics" in data:
                return data
        return None

    @property
    def data_events(self) -> list[Arrival]:
        """The events, without the diagnostic stream's first one."""
        return self.events[1:] if self.hello else self.events


class Decoder:
    """Undoes a ``Content-Encoding`` as bytes arrive; counts gzip members.

    ``None`` (identity) passes bytes through; ``gzip``, ``x-gzip`` and
    ``deflate`` decode with :mod:`zlib`, a stream of several gzip members
    too; ``br`` decodes with the ``brotli`` package if it is installed. Any
    other encoding, or bytes that do not decode, set :attr:`error`, after
    which :meth:`feed` returns nothing.
    """

    def __init__(self, encoding: str | None) -> None:
        #: The ``Content-Encoding`` in lower case; ``None`` for identity.
        self.encoding = encoding
        #: How many gzip (or zlib) members have begun.
        self.members = 0
        #: Why the body cannot be decoded, e.g. ``"zstd, which this check cannot decode"``; else ``None``.
        self.error: str | None = None
        self._zlib: Any = None
        self._brotli: Any = None
        if encoding == "br":
            try:
                import brotli
            except ImportError:
                self.error = "br (Brotli), which this check decodes only with the brotli package installed"
            else:
                self._brotli = brotli.Decompressor()
        elif encoding not in (None, "gzip", "x-gzip", "deflate"):
            self.error = f"{encoding}, which this check cannot decode"

    def _new_member(self) -> Any:
        self.members += 1
        return zlib.decompressobj(31 if self.encoding in ("gzip", "x-gzip") else 15)

    def feed(self, data: bytes) -> bytes:
        """The decoded bytes that ``data``, the next bytes of the body, completes."""
        if self.encoding is None or self.error:
            return data if self.encoding is None else b""
        if self._brotli is not None:
            return bytes(self._brotli.process(data))
        out = b""
        try:
            while data:
                if self._zlib is None or self._zlib.eof:
                    self._zlib = self._new_member()
                out += self._zlib.decompress(data)
                data = self._zlib.unused_data if self._zlib.eof else b""
        except zlib.error as exc:
            self.error = f"{self.encoding} that does not decode ({exc})"
        return out


def connect(url: str, timeout: float, insecure: bool) -> tuple[http.client.HTTPConnection, str]:
    """An unopened connection to ``url``'s host, and the request target; ``ValueError`` for a bad URL.

    ``insecure`` turns off TLS certificate and host name checks.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http:// or https:// URL: {url!r}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context()
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    return conn, target


def record(
    url: str,
    headers: dict[str, str],
    *,
    duration: Callable[[Recording], float],
    stop: Callable[[Recording], bool] = lambda rec: False,
    insecure: bool = False,
) -> Recording:
    """Read ``url`` as an ``EventSource`` would, for at most ``duration(recording)`` seconds.

    ``headers`` are sent as given (no ``Accept-Encoding`` is added). Reading
    stops early once ``stop(recording)`` is true after an event stream's
    bytes arrive, or once 2000 bytes of anything else arrived. Errors are
    recorded (:attr:`Recording.end`, :attr:`Recording.error`), never raised.
    """
    rec = Recording(url)
    started = time.monotonic()

    def now() -> float:
        return time.monotonic() - started

    def remaining() -> float:
        return duration(rec) - now()

    rec.wall_start = time.time()
    try:
        conn, target = connect(url, max(0.1, min(10.0, remaining())), insecure)
        conn.connect()
    except (OSError, ValueError) as exc:  # refused, unknown host, TLS, connect timeout, bad URL
        rec.end, rec.end_at, rec.error = "error", now(), f"{type(exc).__name__}: {exc}"
        return rec
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        # Kept: with Connection: close, getresponse() hands the socket to the response (conn.sock is None).
        sock = conn.sock
        assert sock is not None
        sock.settimeout(max(0.01, remaining()))
        response = conn.getresponse()
    except TimeoutError:
        rec.end, rec.end_at = "timeout", now()
        conn.close()
        return rec
    except (OSError, http.client.HTTPException) as exc:
        rec.end, rec.end_at, rec.error = "error", now(), f"{type(exc).__name__}: {exc}"
        conn.close()
        return rec
    rec.headers_at = now()
    rec.status, rec.reason, rec.headers = response.status, response.reason, response.getheaders()
    encoding = (rec.header("Content-Encoding") or "").strip().lower()
    rec.encoding = None if encoding in ("", "identity") else encoding
    decoder = Decoder(rec.encoding)
    parser = EventParser()
    is_stream = (rec.header("Content-Type") or "").split(";")[0].strip().lower() == "text/event-stream"
    try:
        while True:
            left = remaining()
            if left <= 0:
                rec.end = "timeout"
                break
            sock.settimeout(left)
            try:
                data = response.read1(65536)
            except TimeoutError:
                rec.end = "timeout"
                break
            except (OSError, http.client.HTTPException) as exc:
                rec.end, rec.error = "cut", f"{type(exc).__name__}: {exc}"
                break
            if not data:
                rec.end = "eof"
                break
            at = now()
            if rec.first_byte_at is None:
                rec.first_byte_at = at
            rec.last_byte_at = at
            text = decoder.feed(data)
            rec.body_bytes += len(text)
            if not is_stream or rec.status != 200:
                rec.preview += text
                if len(rec.preview) > 2000:
                    rec.end = "stopped"
                    break
                continue
            comments = parser.comments
            rec.events += [Arrival(at, event) for event in parser.feed(text)]
            rec.comments += [at] * (parser.comments - comments)
            rec.retry, rec.last_event_id = parser.retry, parser.last_event_id
            if stop(rec):
                rec.end = "stopped"
                break
    finally:
        rec.end_at = now()
        rec.members, rec.undecodable = decoder.members, decoder.error
        conn.close()
    return rec


def run(
    url: str,
    *,
    headers: dict[str, str],
    duration: float | None = None,
    reconnect: bool = True,
    insecure: bool = False,
) -> tuple[Recording, Recording | None]:
    """Record ``url``, and its reconnection with ``Last-Event-ID`` unless ``reconnect`` is false.

    Without ``duration``, the diagnostic stream is read to its end (plus 5
    seconds) and any other stream for :data:`DEFAULT_DURATION` seconds. The
    reconnection, made only after a 200 that carried an event id, waits at
    most :data:`RECONNECT_WAIT` seconds for its first event.
    """

    def how_long(rec: Recording) -> float:
        if duration is not None:
            return duration
        hello = rec.hello
        if hello is None:
            return DEFAULT_DURATION
        # The diagnostic stream ends by itself: read all of it, and a little more.
        return float((hello["count"] - 1) * hello["interval"] / 1000 + hello["idle"] + 5.0)

    first = record(url, headers, duration=how_long, insecure=insecure)
    again = None
    if reconnect and first.status == 200 and first.last_event_id:
        wait = min(RECONNECT_WAIT, duration or RECONNECT_WAIT)
        again = record(
            url,
            {**headers, "Last-Event-ID": first.last_event_id},
            duration=lambda rec: wait,
            stop=lambda rec: bool(rec.data_events),
            insecure=insecure,
        )
    return first, again
