"""``manage.py sse_check`` and the diagnostic stream: the command's output, the view in-process, and the
command against real deployments, each with the finding codes it must report. The judging itself, on
synthetic recordings: tests/test_diagnostics_judge.py; the recorder: tests/test_diagnostics_record.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, RequestFactory, override_settings

from django_sse.diagnostics import (
    EXIT_FAILED,
    EXIT_NOT_CHECKED,
    EXIT_OK,
    FAIL,
    OK,
    TOKEN_HEADER,
    WARN,
    DiagnosticStreamView,
    Report,
    parse_cadence,
)
from django_sse.management.commands.sse_check import Command
from django_sse.testing import read_events
from tests.project.urls import CHECK_TOKEN
from tests.servers import Nginx, Server, Started, free_port, manage, start_nginx
from tests.test_proxy_nginx import documented_config, require_nginx

# The command.


def test_the_report_shows_each_finding_with_its_code():
    report = Report(facts=["GET http://example.test/"])
    report.add("per-event", OK, "Each event arrived as it was sent.")
    report.add("cacheable", WARN, "Cache-Control is missing.", "Send Cache-Control: no-cache.")
    report.add(
        "bursts", FAIL, "Events arrived in bursts.\nLikely causes:\n  1. A proxy.\n  2. A list.", "1. a\n2. b"
    )
    out = StringIO()
    Command(stdout=out, no_color=True).print_report(report)
    assert out.getvalue().splitlines() == [
        "GET http://example.test/",
        "",
        "OK    [per-event] Each event arrived as it was sent.",
        "WARN  [cacheable] Cache-Control is missing.",
        "      Fix: Send Cache-Control: no-cache.",
        "FAIL  [bursts] Events arrived in bursts.",
        "      Likely causes:",
        "        1. A proxy.",
        "        2. A list.",
        "      Fixes, in the same order:",
        "        1. a",
        "        2. b",
        "",
        "FAILED: 1 failure(s), 1 warning(s).",
    ]


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
    """Servers and nginx in front of them, on this module's own registry (tests/servers.py
    ``Started``): started on first use, stopped when the module ends."""

    def __init__(self, started: Started) -> None:
        self.started = started

    def server(self, name: str, settings: str | None = None) -> Server:
        return self.started.server(name, settings)

    def nginx(self, name: str, settings: str | None = None, *, documented: bool = False) -> Nginx:
        def start_proxy() -> Nginx:
            require_nginx()
            port = self.server(name, settings).port
            if documented:
                upstream, location = documented_config(port)
                return start_nginx(port, http=upstream, server=location)
            return start_nginx(port)

        return self.started.shared(("nginx", name, settings, documented), start_proxy)


@pytest.fixture(scope="module")
def deployments() -> Iterator[Deployments]:
    started = Started()
    try:
        yield Deployments(started)
    finally:
        started.stop_all()


def sse_check(url: str, *args: str) -> tuple[int, str]:
    result = manage("sse_check", url, "--token", CHECK_TOKEN, *args, timeout=90)
    output = result.stdout + result.stderr
    print(output)
    return result.returncode, output


def findings(output: str) -> list[tuple[str, str]]:
    """The (level, code) of each finding the command printed, in order."""
    return re.findall(r"^(OK|INFO|WARN|FAIL) +\[([a-z0-9.-]+)\] ", output, flags=re.MULTILINE)


def codes(output: str, level: str | None = None) -> list[str]:
    """The codes of the findings the command printed (of one level only, if given), in order."""
    return [code for lvl, code in findings(output) if level in (None, lvl)]


@pytest.mark.parametrize("upstream", ["daphne", "gunicorn-gthread"])  # not server_name: one xdist group
def test_correct_deployment_behind_the_documented_nginx_passes(deployments, upstream):
    proxy = deployments.nginx(upstream, documented=True)
    status, output = sse_check(proxy.url(DIAGNOSTICS))
    assert status == EXIT_OK
    assert findings(output) == [
        ("INFO", "accel-buffering-removed"),
        ("OK", "per-event"),
        ("OK", "heartbeats"),
        ("OK", "resumed"),
    ]
    # What the user reads.
    assert "OK    [resumed] Reconnecting with Last-Event-ID 7 resumed at 8." in output
    assert "PASSED with 0 warning(s)." in output
    assert "A proxy is in between (Server: nginx" in output


def test_django_sse_behind_nginx_defaults_passes_with_warnings(deployments):
    # gzip of event streams and HTTP/1.0 to the upstream: events still arrive one by one.
    status, output = sse_check(deployments.nginx("daphne").url(DIAGNOSTICS))
    assert status == EXIT_OK
    assert "per-event" in codes(output, "OK")
    assert set(codes(output, "WARN")) == {"compressed", "http-1.0"}
    assert codes(output, "FAIL") == []
    assert "proxy_http_version 1.1;" in output
    status, _ = sse_check(deployments.nginx("daphne").url(DIAGNOSTICS), "--strict")
    assert status == EXIT_FAILED


def test_a_hand_built_stream_without_the_middleware_is_buffered_by_nginx(deployments):
    proxy = deployments.nginx("gunicorn-gthread", NOMIDDLEWARE)
    url = proxy.url("/plain/sync/?n=5&interval=0.3")
    # No compression (Accept-Encoding: identity), so the proxy is the only buffer.
    status, output = sse_check(url, "-H", "Accept-Encoding: identity")
    assert status == EXIT_FAILED
    assert codes(output, "FAIL") == ["bursts"]
    # What the user reads: the finding, then its likely causes, proxy buffering first.
    assert (
        "FAIL  [bursts] Events arrived in bursts: 5 events in 1 burst(s), the last as the stream ended"
        in output
    )
    assert "Likely causes, most likely first:\n        1. A proxy buffers the response." in output
    assert "proxy_buffering off;" in output
    # With a browser's Accept-Encoding, Django's GZipMiddleware compresses too: both are named.
    status, output = sse_check(url)
    assert status == EXIT_FAILED
    assert codes(output, "FAIL") == ["bursts"]
    assert "1. GZipMiddleware" in output
    assert "A proxy buffers the response." in output


def test_a_gzip_compressed_stream_is_diagnosed(deployments):
    # Without the middleware GZipMiddleware compresses: a sync stream is held back ...
    server = deployments.server("gunicorn-gthread", NOMIDDLEWARE)
    status, output = sse_check(server.url("/sync/?n=5&interval=0.3"))
    assert status == EXIT_FAILED
    assert "Content-Encoding: gzip" in output
    assert codes(output, "FAIL") == ["bursts"]
    assert "Likely cause:\n        GZipMiddleware (or another compression middleware) compresses" in output
    # ... and an async one (Django 5.2) is sent as one gzip member per chunk.
    status, output = sse_check(deployments.server("daphne", NOMIDDLEWARE).url(DIAGNOSTICS))
    assert status == EXIT_FAILED
    assert "per-event" in codes(output, "OK")
    assert codes(output, "FAIL") == ["gzip-members"]


def test_a_sync_generator_under_asgi_without_the_middleware_is_diagnosed(deployments):
    server = deployments.server("daphne", NOMIDDLEWARE)
    status, output = sse_check(server.url("/plain/sync/?n=4&interval=0.4"))
    assert status == EXIT_FAILED
    assert re.search(r"headers after 1\d{3} ms", output), "daphne sent not even the headers"
    assert codes(output, "FAIL") == ["bursts"]
    causes = output.split("Likely causes, most likely first:")[1]
    assert causes.strip().startswith(
        "1. Under ASGI, Django collects a StreamingHttpResponse over a sync iterator"
    )
    # A longer one than the check waits for (an endless one would never send a byte).
    status, output = sse_check(server.url("/plain/sync/?n=12&interval=0.3"), "--duration", "2")
    assert status == EXIT_FAILED
    assert codes(output) == ["no-headers"]
    assert re.search(r"FAIL  \[no-headers\] No response headers arrived in 2\.\d\d s\.", output)


def test_a_heartbeat_longer_than_proxy_read_timeout_is_diagnosed(deployments):
    # The test project's heartbeat (15 s) against nginx's 2 s proxy_read_timeout.
    proxy = deployments.nginx("daphne")
    status, output = sse_check(proxy.url("/check/diagnostics/?interval=100&count=3&idle=4"))
    assert status == EXIT_FAILED
    assert codes(output, "FAIL") == ["cut-while-idle"]
    assert re.search(r"closed \(cut\) after [12]\.\d\d s without data", output)
    assert "the heartbeat is 15 s" in output


def test_the_diagnostic_stream_refuses_without_its_token(deployments):
    result = manage("sse_check", deployments.server("daphne").url("/sse/diagnostics/"), timeout=60)
    assert result.returncode == EXIT_FAILED
    assert codes(result.stdout) == ["http-status"]
    assert "FAIL  [http-status] HTTP 403 Forbidden" in result.stdout
    assert "--token" in result.stdout
