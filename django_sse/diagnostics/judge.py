"""The judging of ``manage.py sse_check``: findings from recordings, with no I/O.

:func:`diagnose` reads a :class:`~.record.Recording` (and that of the
reconnection with ``Last-Event-ID``, if any) and returns a :class:`Report`:
facts about the response, and :class:`Finding` objects, each with a stable
:data:`Code` (a short slug such as ``"held-back"``), a level (``OK``,
``INFO``, ``WARN``, ``FAIL``), a text and a fix. The codes are listed, with
their meaning and fix, in ``docs/api/diagnostics.rst``; the texts may change,
the codes do not.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

from .record import RECONNECT_WAIT, Recording

__all__ = [
    "CODES",
    "EXIT_FAILED",
    "EXIT_NOT_CHECKED",
    "EXIT_OK",
    "FAIL",
    "INFO",
    "OK",
    "WARN",
    "Code",
    "Finding",
    "Level",
    "Report",
    "diagnose",
]

#: The exit statuses of ``manage.py sse_check``: passed, failed, not checked.
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_NOT_CHECKED: Final = 2

#: An event counts as held back if it arrived at least this much later than the quickest one...
MIN_HOLD = 0.15
#: ... and only as the next one was sent (give or take this). Events closer than BURST_GAP arrived together.
JITTER = 0.05
BURST_GAP = 0.02
#: First response bytes later than this (seconds) are reported.
SLOW_START = 1.0

#: How much a finding matters: ``FAIL`` fails the check, ``WARN`` fails it with ``--strict``.
Level = Literal["OK", "INFO", "WARN", "FAIL"]
OK: Final = "OK"
INFO: Final = "INFO"
WARN: Final = "WARN"
FAIL: Final = "FAIL"

#: The code of a finding: stable, whatever its text says (the table in docs/api/diagnostics.rst).
Code = Literal[
    # The response
    "no-headers",
    "http-status",
    "content-type",
    "content-length",
    "cacheable",
    "accel-buffering-removed",
    "accel-buffering-missing",
    "accel-buffering-on",
    # Delivery
    "undecodable",
    "no-body",
    "held-back",
    "bursts",
    "per-event",
    "spread-out",
    "too-few-events",
    # Compression
    "gzip-members",
    "compressed",
    # Start, idle time and heartbeats
    "slow-first-byte",
    "cut-while-idle",
    "heartbeats",
    "no-heartbeat",
    "comments",
    "cut",
    "ended-after-silence",
    "http-1.0",
    # Reconnection
    "no-event-id",
    "reconnect-failed",
    "last-event-id-lost",
    "resumed",
    "not-resumed",
    "reconnect-no-event",
    "reconnect-reset",
    "replayed",
    "reconnected",
]
#: Every finding code, in the order of the documentation's table.
CODES: tuple[Code, ...] = get_args(Code)

_PROXY_SERVERS = re.compile(
    r"nginx|openresty|apache|httpd|caddy|envoy|haproxy|traefik|varnish|cloudflare|cloudfront|akamai|squid"
    r"|litespeed|iis|gws|awselb",
    re.IGNORECASE,
)

#: The likely causes of events held back: (cause, fix) pairs, named in the findings that list causes.
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
class Finding:
    """One finding: its stable code, its level, what was seen and, for a problem, the fix."""

    code: Code
    level: Level
    text: str  # the first line is the summary; more lines follow (e.g. the likely causes)
    fix: str = ""  # one fix, or numbered fixes a line each


@dataclass
class Report:
    """The facts about a recording, the findings, and why delivery could not be judged (if so)."""

    facts: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    not_checked: str | None = None  # why delivery could not be judged

    def add(self, code: Code, level: Level, text: str, fix: str = "") -> None:
        """Add a finding."""
        self.findings.append(Finding(code, level, text, fix))

    @property
    def codes(self) -> list[Code]:
        """The codes of the findings, in order."""
        return [finding.code for finding in self.findings]

    def exit_status(self, *, strict: bool = False) -> int:
        """:data:`EXIT_FAILED` on a failure (or, ``strict``, a warning), else :data:`EXIT_NOT_CHECKED`
        if delivery could not be judged, else :data:`EXIT_OK`."""
        levels = {f.level for f in self.findings}
        if FAIL in levels or (strict and WARN in levels):
            return EXIT_FAILED
        if self.not_checked:
            return EXIT_NOT_CHECKED
        return EXIT_OK


def _ms(seconds: float | None) -> str:
    """Seconds as whole milliseconds, ``"-"`` for ``None``."""
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _s(seconds: float) -> str:
    """Seconds with two decimals."""
    return f"{seconds:.2f} s"


def _bursts(times: list[float]) -> list[list[float]]:
    """Arrival times grouped into bursts: each less than BURST_GAP after the one before."""
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
    report: Report,
    code: Code,
    level: Level,
    text: str,
    causes: list[tuple[str, str]],
    rec: Recording | None = None,
) -> None:
    """Add a finding that lists the likely ``causes``, and their fixes in the same order."""
    if rec is not None and rec.encoding:
        text += (
            " To see whether compression is the only cause, run again with -H 'Accept-Encoding: identity'."
        )
    lines = [text, "Likely cause" + ("s, most likely first:" if len(causes) > 1 else ":")]
    fixes = []
    for i, (cause, fix) in enumerate(causes, 1):
        lines.append(f"  {i}. {cause}" if len(causes) > 1 else f"  {cause}")
        fixes.append(f"{i}. {fix}" if len(causes) > 1 else fix)
    report.add(code, level, "\n".join(lines), "\n".join(fixes))


def _check_headers(report: Report, rec: Recording, proxy: str | None) -> None:
    """Content-Length, Cache-Control and X-Accel-Buffering."""
    if rec.header("Content-Length") is not None:
        report.add(
            "content-length",
            WARN,
            f"Content-Length is set ({rec.header('Content-Length')}): the response was complete before it "
            "was sent, so it is not a live stream.",
            "Stream the events (EventStreamResponse, EventStreamView) instead of building the body first.",
        )
    cache = (rec.header("Cache-Control") or "").lower()
    if "no-cache" not in cache and "no-store" not in cache:
        report.add(
            "cacheable",
            WARN,
            f"Cache-Control is {rec.header('Cache-Control') or 'missing'}: a cache may hold the stream back "
            "or serve a stale copy.",
            "Send Cache-Control: no-cache (EventStreamResponse and EventStreamMiddleware do).",
        )
    accel = rec.header("X-Accel-Buffering")
    if accel is None:
        if proxy and "nginx" in proxy.lower():
            report.add(
                "accel-buffering-removed",
                INFO,
                "X-Accel-Buffering is not in the response: nginx removes it, so its absence "
                "here says nothing.",
            )
        else:
            report.add(
                "accel-buffering-missing",
                WARN,
                "X-Accel-Buffering: no is missing: an nginx in front of this server would buffer the stream.",
                "Serve the stream with EventStreamResponse or install EventStreamMiddleware, which send it.",
            )
    elif accel.strip().lower() != "no":
        report.add(
            "accel-buffering-on",
            WARN,
            f"X-Accel-Buffering is {accel!r}: nginx buffers the stream.",
            "Send X-Accel-Buffering: no.",
        )


def _check_delivery(report: Report, rec: Recording, hello: dict[str, Any] | None, proxy: str | None) -> bool:
    """Judge the spacing of what arrived; return whether events were held back."""
    events = rec.data_events
    held = _held_back(rec)
    if rec.encoding and rec.undecodable:
        report.add(
            "undecodable",
            WARN,
            f"The stream is compressed with {rec.undecodable}: its events cannot be judged.",
            "Run again with -H 'Accept-Encoding: gzip', or leave event streams uncompressed.",
        )
        report.not_checked = "the compressed stream could not be decoded"
        return False
    if not rec.body_bytes and rec.end == "timeout":
        _add_causes(
            report,
            "no-body",
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
                "held-back",
                FAIL,
                f"Events were held back: {len(late)} of {count} arrived only after the next one was sent "
                f"(up to {_s(worst)} late).{after_end}",
                _causes(rec, hello, proxy),
                rec,
            )
            return True
        report.add(
            "per-event",
            OK,
            f"Each event arrived as it was sent: {count} events, at most {_ms(worst)} later than "
            "the quickest one.",
        )
        return False
    if len(events) < 2:
        report.not_checked = f"{len(events)} event(s) arrived in {_s(rec.end_at or 0)}"
        report.add(
            "too-few-events",
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
            "bursts",
            FAIL,
            f"Events arrived in bursts: {len(events)} events in {len(bursts)} burst(s){at_end}, "
            f"none on its own (if the server really sent them together, check the diagnostic stream).",
            _causes(rec, hello, proxy),
            rec,
        )
        return True
    report.add(
        "spread-out",
        OK,
        f"Events arrived spread out: {len(events)} events at {len(bursts)} different times over {_s(span)}.",
    )
    return False


def _check_compression(report: Report, rec: Recording, held: bool) -> None:
    """A compressed stream: one gzip member per chunk, or compressed yet flushed per event."""
    if not rec.encoding or rec.undecodable:
        return
    if rec.encoding in ("gzip", "x-gzip") and rec.members > 1:
        report.add(
            "gzip-members",
            FAIL,
            f"The stream is compressed as {rec.members} separate gzip members, one per chunk (Django 5.2's "
            "GZipMiddleware does this to async streams): each event grows several times, and curl and some "
            "other clients stop after the first one.",
            CAUSE_COMPRESSION_DJANGO[1],
        )
    elif not held:
        report.add(
            "compressed",
            WARN,
            f"The stream is compressed ({rec.encoding}), yet events arrived one by one: the compressor "
            "flushes after each event (as nginx does for unbuffered responses). Small events gain little, "
            "and a compressor that does not flush would hold them back.",
            "Leave event streams uncompressed: EventStreamMiddleware below GZipMiddleware in Django; "
            "gzip off; in the stream's nginx location.",
        )


def _check_start(report: Report, rec: Recording) -> None:
    """The time to the first bytes of the body."""
    first = rec.first_byte_at
    if first is not None and first > SLOW_START:
        report.add(
            "slow-first-byte",
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
                "cut-while-idle",
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
                level: Level = OK if finished else INFO
                report.add(
                    "heartbeats",
                    level,
                    f"Heartbeats arrived: {len(rec.comments)} comment(s) "
                    f"(heartbeat {heartbeat} s, {idle:g} s without events).",
                )
            elif finished:
                report.add(
                    "no-heartbeat",
                    WARN,
                    f"No heartbeat arrived during {idle:g} s without events (heartbeat "
                    f"{heartbeat} s): something removes comment lines.",
                )
        return
    if rec.comments:
        report.add(
            "comments", INFO, f"{len(rec.comments)} comment(s) (heartbeats or the opening comment) arrived."
        )
    if rec.end == "cut":
        report.add(
            "cut",
            FAIL,
            f"The connection broke after {_s(silent)} without data, before the end of the body "
            f"({rec.error}). A proxy's read timeout or a server's worker timeout cut the stream.",
            "Keep DJANGO_SSE['HEARTBEAT'] below every read timeout on the way; do not use worker timeouts "
            "that end long requests (gunicorn: use the gthread worker; uWSGI: no harakiri).",
        )
    elif rec.end == "eof" and silent >= 5:
        report.add(
            "ended-after-silence",
            WARN,
            f"The stream ended after {_s(silent)} without data: a read timeout may have ended it.",
            "Keep DJANGO_SSE['HEARTBEAT'] below every read timeout on the way.",
        )


def _check_hello(report: Report, hello: dict[str, Any]) -> None:
    """What the diagnostic stream's first event says the application received."""
    if hello.get("protocol") == "HTTP/1.0":
        report.add(
            "http-1.0",
            WARN,
            "The application received the request in HTTP/1.0: a proxy speaks HTTP/1.0 to it (nginx does "
            "before 1.29.7 unless told otherwise). The server then answers without chunked encoding and "
            "closes each connection.",
            'In nginx: proxy_http_version 1.1; and proxy_set_header Connection "";',
        )


def _check_reconnect(report: Report, first: Recording, again: Recording | None) -> None:
    """Whether the reconnection with Last-Event-ID resumed after the last event of ``first``."""
    if again is None:
        return
    sent_id = first.last_event_id
    if again.status != 200:
        report.add(
            "reconnect-failed",
            FAIL,
            f"Reconnecting with Last-Event-ID {sent_id} failed: HTTP {again.status or again.error}.",
        )
        return
    hello = again.hello
    events = again.data_events
    if hello is not None:
        if hello.get("last_event_id") != sent_id:
            report.add(
                "last-event-id-lost",
                FAIL,
                f"Reconnected with Last-Event-ID {sent_id}, but the application received "
                f"{hello.get('last_event_id')!r}: something on the way removes the header, so clients "
                "cannot resume.",
                "Let the Last-Event-ID request header through every proxy.",
            )
        elif events and events[0].event.id == str(int(sent_id) + 1):
            report.add(
                "resumed", OK, f"Reconnecting with Last-Event-ID {sent_id} resumed at {events[0].event.id}."
            )
        else:
            report.add(
                "not-resumed",
                FAIL,
                f"Reconnecting with Last-Event-ID {sent_id} did not resume at the next event.",
            )
        return
    if not events:
        report.add(
            "reconnect-no-event",
            INFO,
            f"Reconnected with Last-Event-ID {sent_id}; no event within {RECONNECT_WAIT:g} s.",
        )
        return
    event = events[0].event
    seen = {a.event.id for a in first.events if a.event.id is not None}
    if event.event == "reset":
        report.add(
            "reconnect-reset",
            INFO,
            f"Reconnecting with Last-Event-ID {sent_id}: the server sent a reset event.",
        )
    elif event.id in seen and event.id != sent_id:
        report.add(
            "replayed",
            WARN,
            f"Reconnecting with Last-Event-ID {sent_id} replayed event {event.id}, received before: the "
            "endpoint does not resume after Last-Event-ID.",
            "Stream channels (EventStreamView.channels) to resume from history, or read Last-Event-ID.",
        )
    else:
        report.add(
            "reconnected", OK, f"Reconnecting with Last-Event-ID {sent_id}: the next event has id {event.id}."
        )


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
            "no-headers",
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
        report.add(
            "http-status", FAIL, f"HTTP {rec.status} {rec.reason}: not an event stream. {preview}", fix
        )
        return report
    content_type = (rec.header("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "text/event-stream":
        report.add(
            "content-type",
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
        report.add(
            "no-event-id", INFO, "No event id arrived: a reconnecting browser cannot say where it stopped."
        )
    _check_reconnect(report, rec, again)
    return report
