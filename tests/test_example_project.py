"""The demo, served by daphne as `.ci/demo` serves it: its page and both streams."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.servers import ROOT, start
from tests.sse_client import read_events


@pytest.fixture(scope="module")
def demo():
    server = start("daphne-demo", settings="example_project.settings", ready_path="/")
    yield server
    server.stop()


def test_page_uses_both_streams(demo):
    page = httpx.get(demo.url("/")).text
    assert "/events/clock/" in page and "/events/job/" in page and "EventSource" in page


def test_clock_ticks(demo):
    received = read_events(demo.url("/events/clock/"), 2)
    assert "content-encoding" not in received.headers
    assert [sse.id for _, sse in received.events] == ["0", "1"]


def test_job_progress_streams_step_by_step(demo):
    received = read_events(demo.url("/events/job/"), 3)
    assert [(sse.event, sse.json()["step"]) for _, sse in received.events] == [
        ("progress", 0),
        ("progress", 1),
        ("progress", 2),
    ]
    _, (t1, _), (t2, _) = received.events
    assert t2 - t1 > 0.3  # each step arrives when it is done, not all at the end


def test_demo_settings_pass_the_checks_without_a_warning():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "example_project.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
