"""``manage.py sse_check URL``: how a live event stream is delivered, judged from what arrives.

It connects the way a browser's ``EventSource`` does, records when each byte,
event and heartbeat arrives, reconnects with ``Last-Event-ID``, and reports
each finding with its likely cause and fix. Best against the diagnostic stream
(``django_sse.urls``), whose events carry the time they were sent.

Exit status: 0 passed (warnings allowed unless ``--strict``), 1 a failure
(events held back, compression that breaks clients, not an event stream, the
stream cut, ``Last-Event-ID`` lost), 2 not checked (no connection, or too few
events to judge).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import ssl
import statistics
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_sse import __version__
from django_sse.diagnostics import HELLO_EVENT, TOKEN_HEADER, diagnostics_token
from django_sse.event import Event, EventParser

EXIT_OK, EXIT_FAILED, EXIT_NOT_CHECKED = 0, 1, 2

#: Seconds read from a stream that is not the diagnostic stream, unless --duration says otherwise.
DEFAULT_DURATION = 10.0
#: An event counts as held back if it arrived at least this much later than the quickest one...
MIN_HOLD = 0.15
#: ... and only as the next one was sent (give or take this). Events closer than BURST_GAP arrived together.
JITTER = 0.05
BURST_GAP = 0.02
#: First response bytes later than this (seconds) are reported.
SLOW_START = 1.0
#: Seconds to wait for the first event after reconnecting.
RECONNECT_WAIT = 5.0

OK, INFO, WARN, FAIL = "OK", "INFO", "WARN", "FAIL"

_PROXY_SERVERS = re.compile(
    r"nginx|openresty|apache|httpd|caddy|envoy|haproxy|traefik|varnish|cloudflare|cloudfront|akamai|squid"
    r"|litespeed|iis|gws|awselb",
    re.IGNORECASE,
)

# The likely causes of events held back, and their fixes.
CAUSE_COMPRESSION_DJANGO = (
    "GZipMiddleware (or another compression middleware) compresses the stream without flushing "
    "after each event.",
    "Add django_sse.middleware.EventStreamMiddleware to MIDDLEWARE, below GZipMiddleware: it keeps "
    "event streams from being compressed.",
)
CAUSE_COMPRESSION_PROXY = (
    "The proxy compresses the stream and holds the compressed bytes back (nginx: gzip_types includes "
    "text/event-stream and the response is buffered).",
    "Turn compression off for the stream's location (nginx: gzip off;), or leave text/event-stream out "
    "of gzip_types.",
)
CAUSE_PROXY_BUFFERING = (
    "A proxy buffers the response. nginx does by default (proxy_buffering on) unless the response "
    "carries X-Accel-Buffering: no, which EventStreamResponse and EventStreamMiddleware send; a "
    "hand-built response without the middleware lacks it, and proxy_ignore_headers can drop it.",
    "Serve the stream with EventStreamView/EventStreamResponse or install EventStreamMiddleware; in "
    "nginx set proxy_buffering off; for the stream's location (other proxies: see the deployment docs).",
)
CAUSE_LIST = (
    "Under ASGI, Django collects a StreamingHttpResponse over a sync iterator into a list before sending "
    "anything (the server log says 'StreamingHttpResponse must consume synchronous iterators'); daphne "
    "then sends not even the headers. Under WSGI an async iterator is collected the same way.",
    "Return an EventStreamResponse (or use EventStreamView), or install EventStreamMiddleware, which "
    "adopts hand-built text/event-stream responses.",
)
CAUSE_OTHER = (
    "A server, middleware or proxy on the way holds the output back.",
    "Run this check against the diagnostic stream (django_sse.urls) directly on the application server, "
    "then through each proxy, to find the layer.",
)


@dataclass
class Arrival:
    """An event, and when it arrived (seconds after the request was sent)."""

    at: float
    event: Event

    def json(self) -> Any:
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


@dataclass
class Finding:
    level: str
    text: str
    fix: str = ""


@dataclass
class Report:
    facts: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    not_checked: str | None = None  # why delivery could not be judged

    def add(self, level: str, text: str, fix: str = "") -> None:
        self.findings.append(Finding(level, text, fix))

    def exit_status(self, *, strict: bool = False) -> int:
        levels = {f.level for f in self.findings}
        if FAIL in levels or (strict and WARN in levels):
            return EXIT_FAILED
        if self.not_checked:
            return EXIT_NOT_CHECKED
        return EXIT_OK


# Reading


class _Decoder:
    """Undoes the Content-Encoding as bytes arrive; counts gzip members."""

    def __init__(self, encoding: str | None) -> None:
        self.encoding = encoding
        self.members = 0
        self.error: str | None = None
        self._zlib: Any = None
        self._brotli: Any = None
        if encoding == "br":
            try:
                import brotli  # type: ignore[import-not-found]
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


def _connect(url: str, timeout: float, insecure: bool) -> tuple[http.client.HTTPConnection, str]:
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
    """Read ``url`` as an ``EventSource`` would, for at most ``duration(recording)`` seconds."""
    rec = Recording(url)
    started = time.monotonic()

    def now() -> float:
        return time.monotonic() - started

    def remaining() -> float:
        return duration(rec) - now()

    rec.wall_start = time.time()
    try:
        conn, target = _connect(url, max(0.1, min(10.0, remaining())), insecure)
        conn.connect()
    except (OSError, ValueError) as exc:  # refused, unknown host, TLS, connect timeout, bad URL
        rec.end, rec.end_at, rec.error = "error", now(), f"{type(exc).__name__}: {exc}"
        return rec
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        assert conn.sock is not None
        conn.sock.settimeout(max(0.01, remaining()))
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
    decoder = _Decoder(rec.encoding)
    parser = EventParser()
    is_stream = (rec.header("Content-Type") or "").split(";")[0].strip().lower() == "text/event-stream"
    try:
        while True:
            left = remaining()
            if left <= 0:
                rec.end = "timeout"
                break
            conn.sock.settimeout(left)
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


# Judging


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def _bursts(times: list[float]) -> list[list[float]]:
    bursts: list[list[float]] = []
    for at in times:
        if bursts and at - bursts[-1][-1] < BURST_GAP:
            bursts[-1].append(at)
        else:
            bursts.append([at])
    return bursts


def _proxy(rec: Recording, hello: dict[str, Any] | None) -> str | None:
    """What shows a proxy between this check and the application, or ``None``."""
    server = rec.header("Server") or ""
    if _PROXY_SERVERS.search(server):
        return f"Server: {server}"
    if rec.header("Via"):
        return f"Via: {rec.header('Via')}"
    if hello and hello.get("proxy_headers"):
        return "the application received " + ", ".join(hello["proxy_headers"])
    if hello and hello.get("protocol") == "HTTP/1.0":
        return "the application received HTTP/1.0 while this check sent HTTP/1.1"
    return None


def _held_back(rec: Recording) -> tuple[list[int], float, int] | None:
    """Indices of events held back, the largest lag beyond the quickest event, and how many were timed.

    ``None`` unless at least two events carry the server time they were sent (``"sent"``).
    """
    timed = []
    for arrival in rec.data_events:
        data = arrival.json()
        if isinstance(data, dict) and isinstance(data.get("sent"), (int, float)):
            timed.append((rec.wall_start + arrival.at, float(data["sent"])))
    if len(timed) < 2:
        return None
    # The quickest event stands for latency plus clock difference; lags are counted beyond it.
    offset = min(arrived - sent for arrived, sent in timed)
    excess = [arrived - sent - offset for arrived, sent in timed]
    gaps = [timed[i + 1][1] - timed[i][1] for i in range(len(timed) - 1)]
    typical = statistics.median(gaps)
    held = [
        i
        for i, lag in enumerate(excess)
        # Held back: it arrived only as (or after) the next event was sent.
        if lag > max(MIN_HOLD, (gaps[i] if i < len(gaps) else typical) - JITTER)
    ]
    return held, max(excess), len(timed)


def _causes(rec: Recording, hello: dict[str, Any] | None, proxy: str | None) -> list[tuple[str, str]]:
    """The likely causes of held-back events, most likely first."""
    causes = []
    # Headers held back with the events and no proxy on the way: daphne waiting for a list to be built.
    late_headers = rec.headers_at is not None and rec.headers_at > SLOW_START
    if hello is None and not proxy and late_headers:
        causes.append(CAUSE_LIST)
    if rec.encoding:
        if proxy and hello is not None and not hello.get("accept_encoding"):
            causes.append(CAUSE_COMPRESSION_PROXY)
        elif proxy:
            causes += [CAUSE_COMPRESSION_DJANGO, CAUSE_COMPRESSION_PROXY]
        else:
            causes.append(CAUSE_COMPRESSION_DJANGO)
    if proxy:
        causes.append(CAUSE_PROXY_BUFFERING)
    if hello is None and not rec.encoding and CAUSE_LIST not in causes:
        # The diagnostic stream is an EventStreamResponse: never collected into a list.
        causes.append(CAUSE_LIST)
    return causes or [CAUSE_OTHER]


def _add_causes(
    report: Report, level: str, text: str, causes: list[tuple[str, str]], rec: Recording | None = None
) -> None:
    if rec is not None and rec.encoding:
        text += (
            " To see whether compression is the only cause, run again with -H 'Accept-Encoding: identity'."
        )
    lines = [text, "Likely cause" + ("s, most likely first:" if len(causes) > 1 else ":")]
    fixes = []
    for i, (cause, fix) in enumerate(causes, 1):
        lines.append(f"  {i}. {cause}" if len(causes) > 1 else f"  {cause}")
        fixes.append(f"{i}. {fix}" if len(causes) > 1 else fix)
    report.add(level, "\n".join(lines), "\n".join(fixes))


def _check_headers(report: Report, rec: Recording, proxy: str | None) -> None:
    if rec.header("Content-Length") is not None:
        report.add(
            WARN,
            f"Content-Length is set ({rec.header('Content-Length')}): the response was complete before it "
            "was sent, so it is not a live stream.",
            "Stream the events (EventStreamResponse, EventStreamView) instead of building the body first.",
        )
    cache = (rec.header("Cache-Control") or "").lower()
    if "no-cache" not in cache and "no-store" not in cache:
        report.add(
            WARN,
            f"Cache-Control is {rec.header('Cache-Control') or 'missing'}: a cache may hold the stream back "
            "or serve a stale copy.",
            "Send Cache-Control: no-cache (EventStreamResponse and EventStreamMiddleware do).",
        )
    accel = rec.header("X-Accel-Buffering")
    if accel is None:
        if proxy and "nginx" in proxy.lower():
            report.add(
                INFO,
                "X-Accel-Buffering is not in the response: nginx removes it, so its absence "
                "here says nothing.",
            )
        else:
            report.add(
                WARN,
                "X-Accel-Buffering: no is missing: an nginx in front of this server would buffer the stream.",
                "Serve the stream with EventStreamResponse or install EventStreamMiddleware, which send it.",
            )
    elif accel.strip().lower() != "no":
        report.add(
            WARN, f"X-Accel-Buffering is {accel!r}: nginx buffers the stream.", "Send X-Accel-Buffering: no."
        )


def _check_delivery(report: Report, rec: Recording, hello: dict[str, Any] | None, proxy: str | None) -> bool:
    """Judge the spacing of what arrived; return whether events were held back."""
    events = rec.data_events
    held = _held_back(rec)
    if rec.encoding and rec.undecodable:
        report.add(
            WARN,
            f"The stream is compressed with {rec.undecodable}: its events cannot be judged.",
            "Run again with -H 'Accept-Encoding: gzip', or leave event streams uncompressed.",
        )
        report.not_checked = "the compressed stream could not be decoded"
        return False
    if not rec.body_bytes and rec.end == "timeout":
        _add_causes(
            report,
            FAIL,
            f"Nothing of the body arrived in {_s(rec.end_at or 0)}. A django-sse stream sends retry: (or a "
            "comment) at once, so something holds it back (or this stream had nothing to send).",
            _causes(rec, hello, proxy),
            rec,
        )
        return True
    if held is not None:
        late, worst, count = held
        if late:
            ended = rec.end == "eof" and rec.end_at is not None and rec.end_at - events[-1].at < 0.1
            after_end = " The last ones arrived only as the stream ended." if ended else ""
            _add_causes(
                report,
                FAIL,
                f"Events were held back: {len(late)} of {count} arrived only after the next one was sent "
                f"(up to {_s(worst)} late).{after_end}",
                _causes(rec, hello, proxy),
                rec,
            )
            return True
        report.add(
            OK,
            f"Each event arrived as it was sent: {count} events, at most {_ms(worst)} later than "
            "the quickest one.",
        )
        return False
    if len(events) < 2:
        report.not_checked = f"{len(events)} event(s) arrived in {_s(rec.end_at or 0)}"
        report.add(
            WARN,
            f"Only {len(events)} event(s) arrived: their spacing cannot be judged.",
            "Check a stream that sends events during the check (--duration), best the diagnostic stream "
            "(django_sse.urls), whose events carry the time they were sent.",
        )
        return False
    bursts = _bursts([a.at for a in events])
    span = events[-1].at - events[0].at
    if all(len(b) > 1 for b in bursts):
        at_end = ""
        if rec.end == "eof" and rec.end_at is not None and rec.end_at - bursts[-1][-1] < 0.1:
            at_end = ", the last as the stream ended"
        _add_causes(
            report,
            FAIL,
            f"Events arrived in bursts: {len(events)} events in {len(bursts)} burst(s){at_end}, "
            f"none on its own (if the server really sent them together, check the diagnostic stream).",
            _causes(rec, hello, proxy),
            rec,
        )
        return True
    report.add(
        OK,
        f"Events arrived spread out: {len(events)} events at {len(bursts)} different times over {_s(span)}.",
    )
    return False


def _check_compression(report: Report, rec: Recording, held: bool) -> None:
    if not rec.encoding or rec.undecodable:
        return
    if rec.encoding in ("gzip", "x-gzip") and rec.members > 1:
        report.add(
            FAIL,
            f"The stream is compressed as {rec.members} separate gzip members, one per chunk (Django 5.2's "
            "GZipMiddleware does this to async streams): each event grows several times, and curl and some "
            "other clients stop after the first one.",
            CAUSE_COMPRESSION_DJANGO[1],
        )
    elif not held:
        report.add(
            WARN,
            f"The stream is compressed ({rec.encoding}), yet events arrived one by one: the compressor "
            "flushes after each event (as nginx does for unbuffered responses). Small events gain little, "
            "and a compressor that does not flush would hold them back.",
            "Leave event streams uncompressed: EventStreamMiddleware below GZipMiddleware in Django; "
            "gzip off; in the stream's nginx location.",
        )


def _check_start(report: Report, rec: Recording) -> None:
    first = rec.first_byte_at
    if first is not None and first > SLOW_START:
        report.add(
            WARN,
            f"The first bytes of the response arrived after {_s(first)}: a browser fires open only then. "
            "django-sse sends retry: at once; daphne sends the headers only with the first body bytes, and "
            "buffering proxies hold them back too.",
            "Serve the stream with EventStreamResponse/EventStreamView (or EventStreamMiddleware) and "
            "keep proxies from buffering it.",
        )


def _check_idle(report: Report, rec: Recording, hello: dict[str, Any] | None) -> None:
    """Heartbeats, and whether the stream survived a time without events."""
    last_data = rec.last_byte_at or rec.headers_at or 0.0
    silent = (rec.end_at or last_data) - last_data
    if hello is not None:
        heartbeat, idle = hello.get("heartbeat"), float(hello.get("idle") or 0)
        finished = any(isinstance(a.json(), dict) and "after_idle" in a.json() for a in rec.data_events)
        expected = hello["count"] + (1 if idle else 0)
        if rec.end in ("eof", "cut") and len(rec.data_events) < expected:
            hb = f"the heartbeat is {heartbeat} s" if heartbeat else "heartbeats are off"
            report.add(
                FAIL,
                f"The stream was closed ({rec.end}) after {_s(silent)} without data, before the diagnostic "
                f"stream's last event ({len(rec.data_events)} of {expected} arrived; {hb}). A proxy's read "
                "timeout (nginx: proxy_read_timeout, 60 s by default) or a server timeout (gunicorn's sync "
                "worker --timeout, uWSGI's harakiri) cut it.",
                "Keep DJANGO_SSE['HEARTBEAT'] below every read timeout on the way (and raise "
                "proxy_read_timeout for the stream's location if needed); do not use timeouts that end "
                "long requests.",
            )
        elif heartbeat and idle > heartbeat:
            if rec.comments:
                level = OK if finished else INFO
                report.add(
                    level,
                    f"Heartbeats arrived: {len(rec.comments)} comment(s) "
                    f"(heartbeat {heartbeat} s, {idle:g} s without events).",
                )
            elif finished:
                report.add(
                    WARN,
                    f"No heartbeat arrived during {idle:g} s without events (heartbeat "
                    f"{heartbeat} s): something removes comment lines.",
                )
        return
    if rec.comments:
        report.add(INFO, f"{len(rec.comments)} comment(s) (heartbeats or the opening comment) arrived.")
    if rec.end == "cut":
        report.add(
            FAIL,
            f"The connection broke after {_s(silent)} without data, before the end of the body "
            f"({rec.error}). A proxy's read timeout or a server's worker timeout cut the stream.",
            "Keep DJANGO_SSE['HEARTBEAT'] below every read timeout on the way; do not use worker timeouts "
            "that end long requests (gunicorn: use the gthread worker; uWSGI: no harakiri).",
        )
    elif rec.end == "eof" and silent >= 5:
        report.add(
            WARN,
            f"The stream ended after {_s(silent)} without data: a read timeout may have ended it.",
            "Keep DJANGO_SSE['HEARTBEAT'] below every read timeout on the way.",
        )


def _check_hello(report: Report, hello: dict[str, Any]) -> None:
    if hello.get("protocol") == "HTTP/1.0":
        report.add(
            WARN,
            "The application received the request in HTTP/1.0: a proxy speaks HTTP/1.0 to it (nginx does "
            "before 1.29.7 unless told otherwise). The server then answers without chunked encoding and "
            "closes each connection.",
            'In nginx: proxy_http_version 1.1; and proxy_set_header Connection "";',
        )


def _check_reconnect(report: Report, first: Recording, again: Recording | None) -> None:
    if again is None:
        return
    sent_id = first.last_event_id
    if again.status != 200:
        report.add(
            FAIL, f"Reconnecting with Last-Event-ID {sent_id} failed: HTTP {again.status or again.error}."
        )
        return
    hello = again.hello
    events = again.data_events
    if hello is not None:
        if hello.get("last_event_id") != sent_id:
            report.add(
                FAIL,
                f"Reconnected with Last-Event-ID {sent_id}, but the application received "
                f"{hello.get('last_event_id')!r}: something on the way removes the header, so clients "
                "cannot resume.",
                "Let the Last-Event-ID request header through every proxy.",
            )
        elif events and events[0].event.id == str(int(sent_id) + 1):
            report.add(OK, f"Reconnecting with Last-Event-ID {sent_id} resumed at {events[0].event.id}.")
        else:
            report.add(FAIL, f"Reconnecting with Last-Event-ID {sent_id} did not resume at the next event.")
        return
    if not events:
        report.add(INFO, f"Reconnected with Last-Event-ID {sent_id}; no event within {RECONNECT_WAIT:g} s.")
        return
    event = events[0].event
    seen = {a.event.id for a in first.events if a.event.id is not None}
    if event.event == "reset":
        report.add(INFO, f"Reconnecting with Last-Event-ID {sent_id}: the server sent a reset event.")
    elif event.id in seen and event.id != sent_id:
        report.add(
            WARN,
            f"Reconnecting with Last-Event-ID {sent_id} replayed event {event.id}, received before: the "
            "endpoint does not resume after Last-Event-ID.",
            "Stream channels (EventStreamView.channels) to resume from history, or read Last-Event-ID.",
        )
    else:
        report.add(OK, f"Reconnecting with Last-Event-ID {sent_id}: the next event has id {event.id}.")


def diagnose(first: Recording, again: Recording | None = None) -> Report:
    """Judge a recording (and the reconnection's, if any)."""
    report = Report()
    rec = first
    report.facts.append(f"GET {rec.url}")
    if rec.status is None:
        if rec.end == "error":
            report.not_checked = f"could not connect: {rec.error}"
            return report
        _add_causes(
            report,
            FAIL,
            f"No response headers arrived in {_s(rec.end_at or 0)}. daphne sends the headers only with the "
            "first body bytes, so a stream held back from its start shows no headers at all.",
            [CAUSE_LIST, CAUSE_PROXY_BUFFERING, CAUSE_COMPRESSION_DJANGO],
        )
        return report
    hello = rec.hello
    first_event = rec.data_events[0].at if rec.data_events else None
    report.facts.append(
        f"HTTP {rec.status} {rec.reason}; headers after {_ms(rec.headers_at)}, first body bytes after "
        f"{_ms(rec.first_byte_at)}, first event after {_ms(first_event)}"
    )
    for name in (
        "Content-Type",
        "Cache-Control",
        "Content-Encoding",
        "Transfer-Encoding",
        "Content-Length",
        "X-Accel-Buffering",
        "Server",
        "Via",
    ):
        value = rec.header(name)
        if value is not None or name in ("Content-Encoding", "X-Accel-Buffering", "Transfer-Encoding"):
            report.facts.append(f"  {name}: {value if value is not None else '-'}")
    if rec.status in (301, 302, 303, 307, 308):
        # EventSource follows redirects; this check does not.
        report.not_checked = f"HTTP {rec.status} redirects to {rec.header('Location')}: check that URL"
        return report
    if rec.status != 200:
        fix = "EventSource fails for good on any status but 200 (204 stops it on purpose)."
        if rec.status == 403 and b"django-sse diagnostics" in rec.preview:
            fix = (
                "The diagnostic stream answers with DEBUG on, to staff users (-H 'Cookie: sessionid=...'), "
                "or with --token (DJANGO_SSE['DIAGNOSTICS_TOKEN'])."
            )
        preview = rec.preview[:200].decode("utf-8", "replace").strip()
        report.add(FAIL, f"HTTP {rec.status} {rec.reason}: not an event stream. {preview}", fix)
        return report
    content_type = (rec.header("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "text/event-stream":
        report.add(
            FAIL,
            f"Content-Type is {rec.header('Content-Type')!r}: EventSource fails for good on "
            "anything but text/event-stream.",
            "Return an EventStreamResponse.",
        )
        return report
    proxy = _proxy(rec, hello)
    if hello is not None:
        app = hello.get("interface", "?").upper()
        software = f" ({hello['server_software']})" if hello.get("server_software") else ""
        report.facts.append(
            f"Diagnostic stream: {app}{software}, {hello.get('protocol')} at the application; "
            f"{hello['count']} events {hello['interval']} ms apart, heartbeat {hello['heartbeat']} s, "
            f"then {hello['idle']:g} s without events"
        )
    if proxy:
        report.facts.append(f"A proxy is in between ({proxy}).")
    retry = f", retry {rec.retry} ms" if rec.retry is not None else ""
    report.facts.append(
        f"Received {len(rec.data_events)} event(s), {len(rec.comments)} comment(s){retry}; "
        + {
            "eof": "the stream ended",
            "cut": "the connection broke",
            "timeout": "stopped reading",
            "stopped": "stopped reading",
        }.get(rec.end, rec.end)
        + f" after {_s(rec.end_at or 0)}."
    )
    _check_headers(report, rec, proxy)
    held = _check_delivery(report, rec, hello, proxy)
    _check_compression(report, rec, held)
    _check_start(report, rec)
    _check_idle(report, rec, hello)
    if hello is not None:
        _check_hello(report, hello)
    if again is None and not rec.last_event_id:
        report.add(INFO, "No event id arrived: a reconnecting browser cannot say where it stopped.")
    _check_reconnect(report, rec, again)
    return report


def run(
    url: str,
    *,
    headers: dict[str, str],
    duration: float | None = None,
    reconnect: bool = True,
    insecure: bool = False,
) -> tuple[Recording, Recording | None]:
    """Record ``url``, and its reconnection with ``Last-Event-ID`` unless ``reconnect`` is false."""

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


class Command(BaseCommand):
    help = (
        "Connect to a live event stream (directly or through proxies) and report how its events are "
        "delivered. Exit status: 0 passed, 1 failed, 2 not checked."
    )
    requires_system_checks: list[str] = []  # it checks a live deployment, not this project's settings

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", help="the stream's URL, best the diagnostic stream (django_sse.urls)")
        parser.add_argument(
            "--duration",
            type=float,
            help=f"seconds to read the stream (default {DEFAULT_DURATION:g}; diagnostic stream: all of it)",
        )
        parser.add_argument(
            "--token",
            help="the diagnostics token (default: $DJANGO_SSE_DIAGNOSTICS_TOKEN, else "
            "DJANGO_SSE['DIAGNOSTICS_TOKEN'])",
        )
        parser.add_argument(
            "-H",
            "--header",
            action="append",
            default=[],
            metavar="'NAME: VALUE'",
            help="a request header to send (repeatable), e.g. a session cookie",
        )
        parser.add_argument("--no-reconnect", action="store_true", help="do not reconnect with Last-Event-ID")
        parser.add_argument("--insecure", action="store_true", help="do not verify the TLS certificate")
        parser.add_argument("--strict", action="store_true", help="fail (exit status 1) on warnings too")

    def handle(self, *args: Any, **options: Any) -> None:
        headers = {
            "Accept": "text/event-stream",
            "Cache-Control": "no-cache",
            # What browsers send, so that compression on the way shows.
            "Accept-Encoding": "gzip, deflate, br",
            "User-Agent": f"django-sse-check/{__version__}",
        }
        token = options["token"] or os.environ.get("DJANGO_SSE_DIAGNOSTICS_TOKEN") or diagnostics_token()
        if token:
            headers[TOKEN_HEADER] = token
        for line in options["header"]:
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise CommandError(
                    f"--header must be 'Name: value', got {line!r}", returncode=EXIT_NOT_CHECKED
                )
            for existing in [k for k in headers if k.lower() == name.strip().lower()]:
                del headers[existing]
            headers[name.strip()] = value.strip()
        if options["duration"] is not None and options["duration"] <= 0:
            raise CommandError("--duration must be positive", returncode=EXIT_NOT_CHECKED)
        first, again = run(
            options["url"],
            headers=headers,
            duration=options["duration"],
            reconnect=not options["no_reconnect"],
            insecure=options["insecure"],
        )
        report = diagnose(first, again)
        self.print_report(report)
        status = report.exit_status(strict=options["strict"])
        if status == EXIT_FAILED:
            raise CommandError("the stream is not delivered as it should be (see above).", returncode=status)
        if status == EXIT_NOT_CHECKED:
            raise CommandError(f"not checked: {report.not_checked}.", returncode=status)

    def print_report(self, report: Report) -> None:
        for line in report.facts:
            self.stdout.write(line)
        self.stdout.write("")
        styles: dict[str, Callable[[str], str]] = {
            OK: self.style.SUCCESS,
            WARN: self.style.WARNING,
            FAIL: self.style.ERROR,
            INFO: str,
        }
        for finding in report.findings:
            head, *rest = finding.text.split("\n")
            self.stdout.write(styles[finding.level](f"{finding.level:<5} ") + head)
            for line in rest:
                self.stdout.write(f"      {line}")
            fixes = finding.fix.split("\n") if finding.fix else []
            if len(fixes) == 1:
                self.stdout.write(f"      Fix: {fixes[0]}")
            elif fixes:
                self.stdout.write("      Fixes, in the same order:")
                for line in fixes:
                    self.stdout.write(f"        {line}")
        fails = sum(f.level == FAIL for f in report.findings)
        warns = sum(f.level == WARN for f in report.findings)
        self.stdout.write("")
        if fails:
            self.stdout.write(self.style.ERROR(f"FAILED: {fails} failure(s), {warns} warning(s)."))
        elif report.not_checked:
            self.stdout.write(self.style.WARNING(f"NOT CHECKED: {report.not_checked}."))
        else:
            self.stdout.write(self.style.SUCCESS(f"PASSED with {warns} warning(s)."))
