"""``manage.py sse_check`` and the diagnostic stream: unit tests of the judging, the view in-process,
and the command against real deployments, each with the outcome it must report."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, RequestFactory, override_settings

from django_sse.diagnostics import TOKEN_HEADER, DiagnosticStreamView, parse_cadence
from django_sse.event import Event
from django_sse.management.commands.sse_check import (
    EXIT_FAILED,
    EXIT_NOT_CHECKED,
    EXIT_OK,
    FAIL,
    OK,
    WARN,
    Arrival,
    Recording,
    diagnose,
)
from django_sse.testing import read_events
from tests.project.urls import CHECK_TOKEN
from tests.servers import free_port, manage, start, start_nginx
from tests.test_proxy_nginx import documented_config, require_nginx

T0 = 1_000_000.0  # the wall-clock time the synthetic requests are sent at
STREAM_HEADERS = [
    ("Content-Type", "text/event-stream"),
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),
]


# The judging, on synthetic recordings.


def hello(**overrides) -> Arrival:
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
    return [
        Arrival(
            arrived, Event(data=json.dumps({"seq": first_seq + i, "sent": T0 + sent}), id=str(first_seq + i))
        )
        for i, (sent, arrived) in enumerate(sent_and_arrived)
    ]


def recording(events: list[Arrival], **fields) -> Recording:
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


def levels(report) -> list[tuple[str, str]]:
    return [(f.level, f.text.split("\n")[0]) for f in report.findings]


def diagnostic_ok() -> Recording:
    # 3 events 0.5 s apart, 2 s idle with heartbeats, then the event after the idle time.
    events = [hello(), *timed([(0.0, 0.012), (0.5, 0.511), (1.0, 1.012), (3.0, 3.013)])]
    events[-1] = Arrival(3.013, Event(data=json.dumps({"seq": 4, "sent": T0 + 3, "after_idle": 2}), id="4"))
    return recording(events, comments=[2.0, 3.0])


def reconnected(seq: int, last_event_id: str | None) -> Recording:
    return recording([hello(last_event_id=last_event_id, first_seq=seq), *timed([(0, 0.01)], first_seq=seq)])


def test_per_event_delivery_passes():
    report = diagnose(diagnostic_ok(), reconnected(5, "4"))
    assert report.exit_status() == EXIT_OK
    assert [level for level, _ in levels(report)] == [OK, OK, OK]
    assert "Each event arrived as it was sent: 4 events" in levels(report)[0][1]
    assert "Heartbeats arrived: 2" in levels(report)[1][1]
    assert "resumed at 5" in levels(report)[2][1]


def test_a_constant_delay_or_clock_difference_is_not_buffering():
    events = [hello(), *timed([(0.0, 30.0), (0.5, 30.5), (1.0, 31.0)])]
    report = diagnose(recording(events))
    assert levels(report)[0][0] == OK


def test_events_held_back_until_the_next_one_fail():
    # Each event arrives only with the next one (a 2-event buffer).
    events = [hello(), *timed([(0.0, 0.51), (0.5, 0.51), (1.0, 1.52), (1.5, 1.52)])]
    report = diagnose(recording(events))
    assert report.exit_status() == EXIT_FAILED
    level, text = levels(report)[0]
    assert level == FAIL
    assert text.startswith("Events were held back: 2 of 4 arrived only after the next one was sent")


def test_buffered_through_a_proxy_names_proxy_buffering():
    events = [hello(proxy_headers=["X-Forwarded-For"]), *timed([(0.0, 1.5), (0.5, 1.5), (1.0, 1.5)])]
    rec = recording(events, headers=[*STREAM_HEADERS[:2], ("Server", "nginx/1.22.1")])
    report = diagnose(rec)
    failure = next(f for f in report.findings if f.level == FAIL)
    assert "A proxy buffers the response" in failure.text
    assert "proxy_buffering off" in failure.fix
    assert "A proxy is in between (Server: nginx/1.22.1)." in report.facts


def test_compressed_and_buffered_names_compression_first_and_suggests_identity():
    rec = recording(timed([(0.0, 1.5), (0.5, 1.5), (1.0, 1.5)]), encoding="gzip", members=1)
    failure = next(f for f in diagnose(rec).findings if f.level == FAIL)
    assert "GZipMiddleware" in failure.text.split("\n")[2]
    assert "-H 'Accept-Encoding: identity'" in failure.text


def test_compressed_but_flushed_per_event_is_a_warning():
    report = diagnose(recording(diagnostic_ok().events, encoding="gzip", members=1, comments=[2.0]))
    assert (
        WARN,
        "The stream is compressed (gzip), yet events arrived one by one: the compressor flushes "
        "after each event (as nginx does for unbuffered responses). Small events gain little, and a "
        "compressor that does not flush would hold them back.",
    ) in levels(report)
    assert report.exit_status() == EXIT_OK
    assert report.exit_status(strict=True) == EXIT_FAILED


def test_one_gzip_member_per_chunk_fails():
    report = diagnose(recording(diagnostic_ok().events, encoding="gzip", members=7, comments=[2.0]))
    assert any(level == FAIL and "7 separate gzip members" in text for level, text in levels(report))


def test_generic_stream_bursts_and_spread():
    burst = [Arrival(2.0, Event(data=str(i), id=str(i))) for i in range(4)]
    report = diagnose(recording(burst))
    assert report.exit_status() == EXIT_FAILED
    expected = (
        "Events arrived in bursts: 4 events in 1 burst(s), the last as the stream ended, none on its own "
        "(if the server really sent them together, check the diagnostic stream)."
    )
    assert (FAIL, expected) in levels(report)
    # Without the send times, the likely cause of a burst with late headers and no proxy: a list.
    late = recording(burst, headers_at=2.0, first_byte_at=2.0)
    failure = next(f for f in diagnose(late).findings if f.level == FAIL)
    assert "collects a StreamingHttpResponse over a sync iterator into a list" in failure.text

    spread = [Arrival(0.5 * i, Event(data=str(i), id=str(i))) for i in range(4)]
    assert diagnose(recording(spread)).exit_status() == EXIT_OK


def test_too_few_events_is_not_checked():
    report = diagnose(recording([Arrival(0.5, Event(data="x"))], end="timeout"))
    assert report.exit_status() == EXIT_NOT_CHECKED
    assert report.not_checked == "1 event(s) arrived in 0.50 s"


def test_nothing_arrived_fails():
    rec = recording([], end="timeout", first_byte_at=None, body_bytes=0)
    rec.end_at = 10.0
    report = diagnose(rec)
    assert report.exit_status() == EXIT_FAILED
    assert any(t.startswith("Nothing of the body arrived in 10.00 s") for _, t in levels(report))


def test_stream_cut_while_idle_fails():
    events = diagnostic_ok().events[:-1]  # no event after the idle time
    rec = recording(events, end="cut", error="IncompleteRead")
    rec.end_at = events[-1].at + 2.0
    report = diagnose(rec)
    failure = next(f for f in report.findings if f.level == FAIL)
    assert failure.text.startswith("The stream was closed (cut) after 2.00 s without data")
    assert "proxy_read_timeout" in failure.text


def test_http_1_0_at_the_application_warns():
    events = diagnostic_ok().events
    events[0] = hello(protocol="HTTP/1.0")
    report = diagnose(recording(events, comments=[2.0]))
    warning = next(f for f in report.findings if f.level == WARN)
    assert "HTTP/1.0" in warning.text
    assert "proxy_http_version 1.1;" in warning.fix


def test_last_event_id_lost_on_the_way_fails():
    report = diagnose(diagnostic_ok(), reconnected(1, None))
    assert report.exit_status() == EXIT_FAILED
    assert "something on the way removes the header" in levels(report)[-1][1]


def test_status_and_content_type_failures():
    forbidden = recording([], status=403, reason="Forbidden", preview=b"django-sse diagnostics: allowed with")
    finding = diagnose(forbidden).findings[0]
    assert (finding.level, finding.text.split(":")[0]) == (FAIL, "HTTP 403 Forbidden")
    assert "--token" in finding.fix
    html = recording([], headers=[("Content-Type", "text/html")])
    assert "Content-Type is 'text/html'" in diagnose(html).findings[0].text


def test_a_redirect_is_not_checked():
    rec = recording([], status=302, reason="Found", headers=[("Location", "https://example.test/x/")])
    report = diagnose(rec)
    assert report.exit_status() == EXIT_NOT_CHECKED
    assert report.not_checked == "HTTP 302 redirects to https://example.test/x/: check that URL"


def test_no_connection_is_not_checked():
    rec = Recording("http://127.0.0.1:1/", end="error", error="ConnectionRefusedError: [Errno 111]")
    report = diagnose(rec)
    assert report.exit_status() == EXIT_NOT_CHECKED
    assert report.findings == []


def test_command_exit_status_without_a_server():
    port = free_port()  # nothing listens there
    with pytest.raises(CommandError) as raised:
        call_command("sse_check", f"http://127.0.0.1:{port}/", "--duration", "2")
    assert raised.value.returncode == EXIT_NOT_CHECKED
    with pytest.raises(CommandError) as raised:
        call_command("sse_check", "http://127.0.0.1/", "-H", "no colon")
    assert raised.value.returncode == EXIT_NOT_CHECKED


# The diagnostic stream, in-process.


def test_parse_cadence():
    assert parse_cadence({}, 15.0).__dict__ == {"interval": 500, "count": 10, "heartbeat": 15.0, "idle": 17.0}
    assert parse_cadence({}, None).idle == 0
    cadence = parse_cadence({"interval": "200", "count": "3", "heartbeat": "0.5", "idle": "1"}, 15.0)
    assert (cadence.interval, cadence.count, cadence.heartbeat, cadence.idle) == (200, 3, 0.5, 1.0)
    for bad in ({"interval": "5"}, {"count": "x"}, {"idle": "inf"}, {"heartbeat": "0"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            parse_cadence(bad, 15.0)


def test_diagnostic_stream_sends_its_cadence_with_send_times():
    url = "/check/diagnostics/?interval=10&count=3&heartbeat=5&idle=0.05"
    response = Client().get(url, headers={TOKEN_HEADER: CHECK_TOKEN, "Last-Event-ID": "41"})
    assert response.status_code == 200
    assert response["X-Accel-Buffering"] == "no"
    events = read_events(response, 5)
    first = json.loads(events[0].data)
    assert events[0].event == "diagnostics"
    assert (first["count"], first["interval"], first["idle"], first["first_seq"]) == (3, 10, 0.05, 42)
    assert (first["last_event_id"], first["interface"], first["protocol"]) == ("41", "wsgi", "HTTP/1.1")
    data = [json.loads(e.data) for e in events[1:]]
    assert [d["seq"] for d in data] == [42, 43, 44, 45]
    assert [e.id for e in events[1:]] == ["42", "43", "44", "45"]
    assert data[-1]["after_idle"] == 0.05
    assert all(isinstance(d["sent"], float) for d in data)


@pytest.mark.parametrize(
    ("path", "headers", "debug", "status"),
    [
        ("/check/diagnostics/", {}, False, 403),
        ("/check/diagnostics/", {TOKEN_HEADER: "wrong"}, False, 403),
        ("/check/diagnostics/?count=3&interval=10&idle=0", {TOKEN_HEADER: CHECK_TOKEN}, False, 200),
        ("/check/diagnostics/?count=0", {TOKEN_HEADER: CHECK_TOKEN}, False, 400),
        # django_sse.urls, included at /sse/: DEBUG, staff users, or DJANGO_SSE["DIAGNOSTICS_TOKEN"].
        ("/sse/diagnostics/", {}, False, 403),
        ("/sse/diagnostics/", {TOKEN_HEADER: CHECK_TOKEN}, False, 403),
        ("/sse/diagnostics/?count=3&interval=10&idle=0", {}, True, 200),
    ],
)
def test_diagnostic_stream_is_guarded(path, headers, debug, status):
    with override_settings(DEBUG=debug):
        response = Client().get(path, headers=headers)
    assert response.status_code == status
    if status == 403:
        assert b"DIAGNOSTICS_TOKEN" in response.content
    if status == 200:
        assert len(read_events(response, 4)) == 4


def test_staff_users_and_the_setting_token_are_allowed():
    view = DiagnosticStreamView()
    request = RequestFactory().get("/")

    class User:
        is_active, is_staff = True, True

    request.user = User()  # type: ignore[assignment]
    assert view.is_allowed(request)
    User.is_staff = False
    assert not view.is_allowed(request)
    # The setting's key is read here directly; the full stream needs it in conf.py's schema.
    with override_settings(DJANGO_SSE={"DIAGNOSTICS_TOKEN": "s3cret"}):
        assert not view.is_allowed(request)
        assert view.is_allowed(RequestFactory().get("/", headers={TOKEN_HEADER: "s3cret"}))
        assert not view.is_allowed(RequestFactory().get("/", headers={TOKEN_HEADER: "s3cre"}))


# The command against real deployments.

pytestmark = pytest.mark.xdist_group("sse-check")

NOMIDDLEWARE = "tests.project.settings_nomiddleware"
DIAGNOSTICS = "/check/diagnostics/?interval=200&count=6&heartbeat=0.5&idle=2.5"


class Deployments:
    """Servers and nginx instances, started on first use, stopped at the end of the module."""

    def __init__(self) -> None:
        self._running: dict[tuple, object] = {}

    def server(self, name: str, settings: str | None = None):
        key = ("server", name, settings)
        if key not in self._running:
            self._running[key] = start(name, settings=settings)
        return self._running[key]

    def nginx(self, name: str, settings: str | None = None, *, documented: bool = False):
        key = ("nginx", name, settings, documented)
        if key not in self._running:
            require_nginx()
            port = self.server(name, settings).port
            if documented:
                upstream, location = documented_config(port)
                self._running[key] = start_nginx(port, http=upstream, server=location)
            else:
                self._running[key] = start_nginx(port)
        return self._running[key]

    def stop_all(self) -> None:
        for running in reversed(list(self._running.values())):
            running.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def deployments() -> Iterator[Deployments]:
    running = Deployments()
    try:
        yield running
    finally:
        running.stop_all()


def sse_check(url: str, *args: str) -> tuple[int, str]:
    result = manage("sse_check", url, "--token", CHECK_TOKEN, *args, timeout=90)
    output = result.stdout + result.stderr
    print(output)
    return result.returncode, output


def finding_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.match(r"(OK|INFO|WARN|FAIL) ", line)]


@pytest.mark.parametrize("upstream", ["daphne", "gunicorn-gthread"])  # not server_name: one xdist group
def test_correct_deployment_behind_the_documented_nginx_passes(deployments, upstream):
    proxy = deployments.nginx(upstream, documented=True)
    status, output = sse_check(proxy.url(DIAGNOSTICS))
    assert status == EXIT_OK
    assert "PASSED with 0 warning(s)." in output
    lines = finding_lines(output)
    assert lines[0].startswith("INFO  X-Accel-Buffering is not in the response: nginx removes it")
    assert lines[1].startswith("OK    Each event arrived as it was sent: 7 events")
    assert lines[2].startswith("OK    Heartbeats arrived")
    assert lines[3] == "OK    Reconnecting with Last-Event-ID 7 resumed at 8."
    assert "A proxy is in between (Server: nginx" in output


def test_django_sse_behind_nginx_defaults_passes_with_warnings(deployments):
    # gzip of event streams and HTTP/1.0 to the upstream: events still arrive one by one.
    status, output = sse_check(deployments.nginx("daphne").url(DIAGNOSTICS))
    assert status == EXIT_OK
    assert "PASSED with 2 warning(s)." in output
    warnings = [line for line in finding_lines(output) if line.startswith("WARN")]
    assert warnings[0].startswith("WARN  The stream is compressed (gzip), yet events arrived one by one")
    assert warnings[1].startswith("WARN  The application received the request in HTTP/1.0")
    assert "proxy_http_version 1.1;" in output
    status, _ = sse_check(deployments.nginx("daphne").url(DIAGNOSTICS), "--strict")
    assert status == EXIT_FAILED


def test_a_hand_built_stream_without_the_middleware_is_buffered_by_nginx(deployments):
    proxy = deployments.nginx("gunicorn-gthread", NOMIDDLEWARE)
    url = proxy.url("/plain/sync/?n=5&interval=0.3")
    # No compression (Accept-Encoding: identity), so the proxy is the only buffer.
    status, output = sse_check(url, "-H", "Accept-Encoding: identity")
    assert status == EXIT_FAILED
    failure = next(line for line in finding_lines(output) if line.startswith("FAIL"))
    assert failure.startswith(
        "FAIL  Events arrived in bursts: 5 events in 1 burst(s), the last as the stream ended"
    )
    assert "Likely causes, most likely first:\n        1. A proxy buffers the response." in output
    assert "proxy_buffering off;" in output
    # With a browser's Accept-Encoding, Django's GZipMiddleware compresses too: both are named.
    status, output = sse_check(url)
    assert status == EXIT_FAILED
    assert "1. GZipMiddleware" in output
    assert "A proxy buffers the response." in output


def test_a_gzip_compressed_stream_is_diagnosed(deployments):
    # Without the middleware GZipMiddleware compresses: a sync stream is held back ...
    server = deployments.server("gunicorn-gthread", NOMIDDLEWARE)
    status, output = sse_check(server.url("/sync/?n=5&interval=0.3"))
    assert status == EXIT_FAILED
    assert "Content-Encoding: gzip" in output
    assert "FAIL  Events arrived in bursts: 5 events in 1 burst(s)" in output
    assert "Likely cause:\n        GZipMiddleware (or another compression middleware) compresses" in output
    # ... and an async one (Django 5.2) is sent as one gzip member per chunk.
    status, output = sse_check(deployments.server("daphne", NOMIDDLEWARE).url(DIAGNOSTICS))
    assert status == EXIT_FAILED
    assert "OK    Each event arrived as it was sent" in output
    assert re.search(r"FAIL  The stream is compressed as \d+ separate gzip members", output)


def test_a_sync_generator_under_asgi_without_the_middleware_is_diagnosed(deployments):
    server = deployments.server("daphne", NOMIDDLEWARE)
    status, output = sse_check(server.url("/plain/sync/?n=4&interval=0.4"))
    assert status == EXIT_FAILED
    assert re.search(r"headers after 1\d{3} ms", output), "daphne sent not even the headers"
    assert "FAIL  Events arrived in bursts: 4 events in 1 burst(s)" in output
    causes = output.split("Likely causes, most likely first:")[1]
    assert causes.strip().startswith(
        "1. Under ASGI, Django collects a StreamingHttpResponse over a sync iterator"
    )
    # A longer one than the check waits for (an endless one would never send a byte).
    status, output = sse_check(server.url("/plain/sync/?n=12&interval=0.3"), "--duration", "2")
    assert status == EXIT_FAILED
    assert re.search(r"FAIL  No response headers arrived in 2\.\d\d s\.", output)


def test_a_heartbeat_longer_than_proxy_read_timeout_is_diagnosed(deployments):
    # The test project's heartbeat (15 s) against nginx's 2 s proxy_read_timeout.
    proxy = deployments.nginx("daphne")
    status, output = sse_check(proxy.url("/check/diagnostics/?interval=100&count=3&idle=4"))
    assert status == EXIT_FAILED
    assert re.search(r"FAIL  The stream was closed \(cut\) after [12]\.\d\d s without data", output)
    assert "the heartbeat is 15 s" in output


def test_the_diagnostic_stream_refuses_without_its_token(deployments):
    result = manage("sse_check", deployments.server("daphne").url("/sse/diagnostics/"), timeout=60)
    assert result.returncode == EXIT_FAILED
    assert "FAIL  HTTP 403 Forbidden" in result.stdout
    assert "--token" in result.stdout
