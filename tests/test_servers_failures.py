"""A failure inside a stream ends the response cleanly on every server, so that EventSource reconnects.

A response cut off without its end (daphne's when the application raises) leaves the browser's
EventSource open and silent for good; one that ends is reconnected after ``retry``.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.servers import EVERY_SERVER
from tests.sse_client import BROWSER_HEADERS, wait_for

PATHS = {
    "async": ("/failing/async/", "tests.project.views.Failing", "boom in async stream()"),
    "sync": ("/failing/sync/", "tests.project.views.FailingSync", "boom in sync stream()"),
    "snapshot": (
        "/failing/snapshot/{channel}/",
        "tests.project.views.FailingSnapshot",
        "boom in initial_events()",
    ),
}


@pytest.mark.parametrize("where", list(PATHS))
@pytest.mark.parametrize("server_name", EVERY_SERVER)
def test_a_failing_stream_ends_its_response_and_is_logged_once(servers, server_name, where):
    server = servers[server_name]
    path, view, message = PATHS[where]
    logged = f"the stream of {view} failed"
    before = server.log().count(logged)
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "GET", server.url(path.format(channel=f"c{uuid.uuid4().hex[:8]}")), headers=BROWSER_HEADERS
        ) as response,
    ):
        # The whole body, to its end: a response left open would time out here instead.
        body = b"".join(response.iter_raw())
    assert response.status_code == 200
    # What came before the failure arrived (a sync snapshot is read whole first: nothing of it).
    assert (b'data: {"i": 0}' in body) if where != "snapshot" else body.startswith(b"retry:")
    assert wait_for(lambda: server.log().count(logged) == before + 1), server.log()
    assert f"RuntimeError: {message}" in server.log()
