"""django_sse.diagnostics.judge on synthetic recordings, no server: a scenario for every finding code,
the all-good case, and the codes against the table of docs/api/diagnostics.rst."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from django_sse.diagnostics.judge import (
    CODES,
    EXIT_FAILED,
    EXIT_NOT_CHECKED,
    EXIT_OK,
    FAIL,
    INFO,
    OK,
    WARN,
    Report,
    diagnose,
)
from django_sse.diagnostics.record import Arrival, Recording
from django_sse.event import Event

DOCS = Path(__file__).resolve().parent.parent / "docs" / "api" / "diagnostics.rst"
T0 = 1_000_000.0  # the wall-clock time the synthetic requests are sent at
STREAM_HEADERS = [
    ("Content-Type", "text/event-stream"),
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),
]


def hello(**overrides) -> Arrival:
    """The diagnostic stream's first event: 3 events 500 ms apart, heartbeat 1 s, then 2 s idle."""
    data = {
        "diagnostics": "django-sse",
        "interval": 500,
        "count": 3,
        "heartbeat": 1.0,
        "idle": 2.0,
        "protocol": "HTTP/1.1",
        "interface": "asgi",
        "proxy_headers": [],
        "accept_encoding": "gzip",
        "last_event_id": None,
        "sent": T0,
        **overrides,
    }
    return Arrival(0.01, Event(event="diagnostics", data=json.dumps(data)))


def timed(sent_and_arrived: list[tuple[float, float]], *, first_seq: int = 1) -> list[Arrival]:
    """Events of the diagnostic stream, sent and arrived at the given seconds."""
    return [
        Arrival(
            arrived, Event(data=json.dumps({"seq": first_seq + i, "sent": T0 + sent}), id=str(first_seq + i))
        )
        for i, (sent, arrived) in enumerate(sent_and_arrived)
    ]


def plain(times: list[float], *, ids: bool = True) -> list[Arrival]:
    """Events of a stream that is not the diagnostic stream, arrived at the given seconds."""
    return [Arrival(at, Event(data=str(i), id=str(i + 1) if ids else None)) for i, at in enumerate(times)]


def recording(events: list[Arrival], **fields) -> Recording:
    """A 200 event stream that ended (eof) just after its last event, with ``fields`` set on it."""
    rec = Recording(
        "http://example.test/sse/diagnostics/",
        wall_start=T0,
        status=200,
        reason="OK",
        headers=list(STREAM_HEADERS),
        headers_at=0.005,
        first_byte_at=0.006,
        end="eof",
    )
    rec.events = events
    rec.last_byte_at = events[-1].at if events else None
    rec.end_at = (rec.last_byte_at or 0.01) + 0.001
    rec.body_bytes = 100 * len(events)
    rec.last_event_id = next((a.event.id for a in reversed(events) if a.event.id), "") or ""
    for name, value in fields.items():
        setattr(rec, name, value)
    return rec


def diagnostic_ok(**fields) -> Recording:
    """3 events 0.5 s apart, 2 s idle with heartbeats, then the event after the idle time."""
    events = [hello(), *timed([(0.0, 0.012), (0.5, 0.511), (1.0, 1.012), (3.0, 3.013)])]
    events[-1] = Arrival(3.013, Event(data=json.dumps({"seq": 4, "sent": T0 + 3, "after_idle": 2}), id="4"))
    return recording(events, **{"comments": [2.0, 3.0], **fields})


def reconnected(seq: int, last_event_id: str | None) -> Recording:
    """The diagnostic stream after a reconnection: it received ``last_event_id``, it starts at ``seq``."""
    return recording([hello(last_event_id=last_event_id, first_seq=seq), *timed([(0, 0.01)], first_seq=seq)])


def spread(**fields) -> Recording:
    """A stream that is not the diagnostic stream, its 4 events half a second apart."""
    return recording(plain([0.5 * i for i in range(4)]), **fields)


def finding(report: Report, code: str):
    return next(f for f in report.findings if f.code == code)


def test_all_good():
    report = diagnose(diagnostic_ok(), reconnected(5, "4"))
    assert report.codes == ["per-event", "heartbeats", "resumed"]
    assert {f.level for f in report.findings} == {OK}
    assert report.exit_status(strict=True) == EXIT_OK
    assert report.not_checked is None
    # What the user reads first.
    assert report.findings[0].text.startswith("Each event arrived as it was sent: 4 events")
    assert "Received 4 event(s), 2 comment(s); the stream ended after 3.01 s." in report.facts


def _held_back() -> Report:
    # Each event arrives only with the next one (a 2-event buffer).
    return diagnose(recording([hello(), *timed([(0.0, 0.51), (0.5, 0.51), (1.0, 1.52), (1.5, 1.52)])]))


def _no_headers() -> Report:
    return diagnose(Recording("http://example.test/", end="timeout", end_at=2.0))


def _forbidden() -> Report:
    preview = b"django-sse diagnostics: allowed with DEBUG on"
    return diagnose(recording([], status=403, reason="Forbidden", preview=preview))


def _headers(*extra: tuple[str, str], without: str = "") -> Report:
    """The all-good diagnostic stream, with its response header ``without`` left out and ``extra`` added."""
    headers = [(k, v) for k, v in STREAM_HEADERS if k != without]
    return diagnose(diagnostic_ok(headers=[*headers, *extra]))


def _generic_reconnection(again: Recording) -> Report:
    first = spread()  # ids 1 to 4
    return diagnose(first, again)


#: For every finding code: a report that has it, and the code's level there.
SCENARIOS: dict[str, tuple[Callable[[], Report], str]] = {
    "no-headers": (_no_headers, FAIL),
    "http-status": (_forbidden, FAIL),
    "content-type": (lambda: diagnose(recording([], headers=[("Content-Type", "text/html")])), FAIL),
    "content-length": (lambda: _headers(("Content-Length", "512")), WARN),
    "cacheable": (lambda: _headers(without="Cache-Control"), WARN),
    "accel-buffering-removed": (
        lambda: _headers(("Server", "nginx/1.26"), without="X-Accel-Buffering"),
        INFO,
    ),
    "accel-buffering-missing": (lambda: _headers(without="X-Accel-Buffering"), WARN),
    "accel-buffering-on": (lambda: _headers(("X-Accel-Buffering", "yes"), without="X-Accel-Buffering"), WARN),
    "undecodable": (lambda: diagnose(diagnostic_ok(encoding="br", undecodable="br (Brotli), ...")), WARN),
    "no-body": (lambda: diagnose(recording([], end="timeout", first_byte_at=None, end_at=10.0)), FAIL),
    "held-back": (_held_back, FAIL),
    "bursts": (lambda: diagnose(recording(plain([2.0] * 4))), FAIL),
    "per-event": (lambda: diagnose(diagnostic_ok()), OK),
    "spread-out": (lambda: diagnose(spread()), OK),
    "too-few-events": (lambda: diagnose(recording(plain([0.5]), end="timeout")), WARN),
    "gzip-members": (lambda: diagnose(diagnostic_ok(encoding="gzip", members=7)), FAIL),
    "compressed": (lambda: diagnose(diagnostic_ok(encoding="gzip", members=1)), WARN),
    "slow-first-byte": (lambda: diagnose(diagnostic_ok(headers_at=1.4, first_byte_at=1.5)), WARN),
    "cut-while-idle": (lambda: diagnose(recording(diagnostic_ok().events[:-1], end="cut", end_at=3.0)), FAIL),
    "heartbeats": (lambda: diagnose(diagnostic_ok()), OK),
    "no-heartbeat": (lambda: diagnose(diagnostic_ok(comments=[])), WARN),
    "comments": (lambda: diagnose(spread(comments=[0.0, 1.0])), INFO),
    "cut": (lambda: diagnose(spread(end="cut", error="IncompleteRead(0 bytes read)")), FAIL),
    "ended-after-silence": (lambda: diagnose(spread(end_at=7.0)), WARN),
    "http-1.0": (
        lambda: diagnose(
            recording([hello(protocol="HTTP/1.0"), *diagnostic_ok().events[1:]], comments=[2.0])
        ),
        WARN,
    ),
    "no-event-id": (lambda: diagnose(recording(plain([0.5 * i for i in range(4)], ids=False))), INFO),
    "reconnect-failed": (
        lambda: diagnose(diagnostic_ok(), recording([], status=502, reason="Bad Gateway")),
        FAIL,
    ),
    "last-event-id-lost": (lambda: diagnose(diagnostic_ok(), reconnected(1, None)), FAIL),
    "resumed": (lambda: diagnose(diagnostic_ok(), reconnected(5, "4")), OK),
    "not-resumed": (lambda: diagnose(diagnostic_ok(), reconnected(1, "4")), FAIL),
    "reconnect-no-event": (lambda: _generic_reconnection(recording([], end="timeout")), INFO),
    "reconnect-reset": (
        lambda: _generic_reconnection(recording([Arrival(0.01, Event(event="reset", data="{}"))])),
        INFO,
    ),
    "replayed": (lambda: _generic_reconnection(recording(plain([0.01, 0.02]))), WARN),
    "reconnected": (
        lambda: _generic_reconnection(recording([Arrival(0.01, Event(data="next", id="5"))], end="stopped")),
        OK,
    ),
}


#: Problems whose text is all there is to say.
NO_FIX = {"no-heartbeat", "reconnect-failed", "not-resumed"}


def test_every_code_has_a_scenario():
    assert sorted(SCENARIOS) == sorted(CODES)
    assert len(set(CODES)) == len(CODES)


@pytest.mark.parametrize("code", list(SCENARIOS))
def test_each_code(code):
    build, level = SCENARIOS[code]
    report = build()
    assert code in report.codes, report.codes
    assert finding(report, code).level == level
    if level == FAIL:
        assert report.exit_status() == EXIT_FAILED
    elif FAIL not in {f.level for f in report.findings}:
        assert report.exit_status() == (EXIT_NOT_CHECKED if report.not_checked else EXIT_OK)
    if level == WARN:
        assert report.exit_status(strict=True) == EXIT_FAILED
    if level in (WARN, FAIL) and code not in NO_FIX:
        assert finding(report, code).fix, f"{code} has no fix"


def test_every_code_is_in_the_documentation_table():
    documented = re.findall(r"^   \* - ``([a-z0-9.-]+)``$", DOCS.read_text(), flags=re.MULTILINE)
    assert documented == list(CODES)


# What the findings say and decide, beyond their codes.


def test_held_back_names_its_causes():
    report = _held_back()
    assert report.codes == ["held-back"]
    assert report.exit_status() == EXIT_FAILED
    held = finding(report, "held-back")
    assert held.text.startswith("Events were held back: 2 of 4 arrived only after the next one was sent")
    # The diagnostic stream, no proxy, no compression: nothing to name but "something on the way".
    assert "Likely cause:\n  A server, middleware or proxy on the way" in held.text


def test_a_constant_delay_or_clock_difference_is_not_buffering():
    events = [hello(), *timed([(0.0, 30.0), (0.5, 30.5), (1.0, 31.0)])]
    assert diagnose(recording(events)).codes[0] == "per-event"


def test_buffered_through_a_proxy_names_proxy_buffering():
    events = [hello(proxy_headers=["X-Forwarded-For"]), *timed([(0.0, 1.5), (0.5, 1.5), (1.0, 1.5)])]
    rec = recording(events, headers=[*STREAM_HEADERS[:2], ("Server", "nginx/1.22.1")])
    report = diagnose(rec)
    assert {"held-back", "accel-buffering-removed"} <= set(report.codes)
    held = finding(report, "held-back")
    assert "A proxy buffers the response" in held.text
    assert "proxy_buffering off" in held.fix
    assert "A proxy is in between (Server: nginx/1.22.1)." in report.facts


def test_compressed_and_buffered_names_compression_first_and_suggests_identity():
    report = diagnose(recording(timed([(0.0, 1.5), (0.5, 1.5), (1.0, 1.5)]), encoding="gzip", members=1))
    # Held back: the compression finding is not added on top.
    assert "compressed" not in report.codes
    held = finding(report, "held-back")
    assert held.text.split("\n")[1:3] == [
        "Likely cause:",
        "  GZipMiddleware (or another compression middleware) compresses the stream without flushing "
        "after each event.",
    ]
    assert "-H 'Accept-Encoding: identity'" in held.text
    assert held.fix.startswith("Add django_sse.middleware.EventStreamMiddleware")


def test_a_burst_with_late_headers_and_no_proxy_names_the_list_first():
    late = recording(plain([2.0] * 4), headers_at=2.0, first_byte_at=2.0)
    report = diagnose(late)
    assert report.codes == ["bursts", "slow-first-byte"]
    bursts = finding(report, "bursts")
    assert bursts.text.startswith(
        "Events arrived in bursts: 4 events in 1 burst(s), the last as the stream ended"
    )
    assert bursts.text.split("\n")[1] == "Likely cause:"
    assert "collects a StreamingHttpResponse over a sync iterator into a list" in bursts.text


def test_no_headers_lists_three_causes():
    held = finding(_no_headers(), "no-headers")
    assert held.text.startswith("No response headers arrived in 2.00 s.")
    assert held.fix.count("\n") == 2


def test_not_checked():
    report = diagnose(recording(plain([0.5]), end="timeout"))
    assert report.exit_status() == EXIT_NOT_CHECKED
    assert report.not_checked == "1 event(s) arrived in 0.50 s"
    undecodable = diagnose(diagnostic_ok(encoding="br", undecodable="br (Brotli), ..."))
    assert undecodable.not_checked == "the compressed stream could not be decoded"
    assert "per-event" not in undecodable.codes


def test_a_redirect_is_not_checked():
    rec = recording([], status=302, reason="Found", headers=[("Location", "https://example.test/x/")])
    report = diagnose(rec)
    assert report.exit_status() == EXIT_NOT_CHECKED
    assert report.not_checked == "HTTP 302 redirects to https://example.test/x/: check that URL"
    assert report.findings == []


def test_no_connection_is_not_checked():
    rec = Recording("http://127.0.0.1:1/", end="error", error="ConnectionRefusedError: [Errno 111]")
    report = diagnose(rec)
    assert report.exit_status() == EXIT_NOT_CHECKED
    assert report.not_checked == "could not connect: ConnectionRefusedError: [Errno 111]"
    assert report.findings == []


def test_the_forbidden_diagnostic_stream_says_how_to_get_in():
    forbidden = finding(_forbidden(), "http-status")
    assert forbidden.text.startswith("HTTP 403 Forbidden: not an event stream. django-sse diagnostics")
    assert "--token" in forbidden.fix


def test_heartbeats_are_info_until_the_stream_finished():
    unfinished = recording(diagnostic_ok().events[:-1], end="timeout", comments=[2.0], end_at=2.5)
    assert finding(diagnose(unfinished), "heartbeats").level == INFO


def test_a_stream_cut_while_idle_says_how_long_and_the_heartbeat():
    events = diagnostic_ok().events[:-1]  # no event after the idle time
    cut = finding(diagnose(recording(events, end="cut", end_at=events[-1].at + 2.0)), "cut-while-idle")
    assert cut.text.startswith("The stream was closed (cut) after 2.00 s without data")
    assert "3 of 4 arrived; the heartbeat is 1.0 s" in cut.text
    assert "proxy_read_timeout" in cut.text
