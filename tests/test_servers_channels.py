"""Channels on real servers: publish from anywhere, replay with no gap and no duplicate."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest
from httpx_sse import EventSource

from tests.servers import manage, start_publisher
from tests.sse_client import BROWSER_HEADERS, Received, read_events, wait_for

# gunicorn's sync worker serves one connection at a time: a stream would block every publish.
SERVERS = ["daphne", "runserver", "uvicorn", "channels", "gunicorn-gthread", "uvicorn-sse", "daphne-sse"]

pool = ThreadPoolExecutor(max_workers=8)


def channel() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def subscribers(server) -> int:
    return httpx.get(server.url("/sse-stats/"), timeout=10).json()["subscribers"]


def open_stream(server, path: str, count: int, *, before: int | None = None) -> Future[Received]:
    """Read ``count`` events of ``path`` in the background, once it is subscribed."""
    before = subscribers(server) if before is None else before
    future = pool.submit(read_events, server.url(path), count)
    assert wait_for(lambda: subscribers(server) > before or future.done(), timeout=10)
    return future


def publish(server, name: str, n: int = 1, size: int = 0) -> list[str]:
    response = httpx.post(server.url(f"/publish/{name}/?n={n}&size={size}"), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["ids"]


@pytest.mark.parametrize("server_name", SERVERS)
def test_published_events_reach_the_stream_at_once_in_order(servers, server_name):
    server, name = servers[server_name], channel()
    stream = open_stream(server, f"/channels/{name}/", 5)
    ids = publish(server, name, 5)
    received = stream.result(timeout=15)
    assert [sse.id for _, sse in received.events] == ids
    assert [d["seq"] for d in received.data()] == [0, 1, 2, 3, 4]
    for arrived, sse in received.events:
        assert arrived - sse.json()["t"] < 0.5
    assert "content-encoding" not in received.headers


@pytest.mark.parametrize("server_name", ["daphne", "uvicorn", "gunicorn-gthread"])
def test_a_command_in_another_process_reaches_open_streams(servers, server_name):
    server, name = servers[server_name], channel()
    stream = open_stream(server, f"/channels/{name}/", 1)
    result = manage("sse_publish", name, '{"from": "command"}', "--json", "--event", "note")
    assert result.returncode == 0, result.stderr
    published_id = result.stdout.split()[2]
    [(_, sse)] = stream.result(timeout=10).events  # found by the dispatcher's poll (POLL_INTERVAL 0.2 s)
    assert (sse.event, sse.json(), sse.id) == ("note", {"from": "command"}, published_id)


@pytest.mark.parametrize(
    "server_name", ["daphne", "uvicorn", "gunicorn-gthread", "uvicorn-sse", "daphne-sse"]
)
def test_reconnecting_across_channels_during_publishing_loses_and_repeats_nothing(servers, server_name):
    server = servers[server_name]
    a, b, other = channel(), channel(), channel()
    # Connect once to learn the position, as a browser's first connection does.
    with (
        httpx.Client(timeout=10) as client,
        client.stream("GET", server.url(f"/channels/{a},{b}/")) as response,
    ):
        position = next(line[4:] for line in response.iter_lines() if line.startswith("id: "))
    publisher = start_publisher(f"{a},{b},{other}", 240, 0.01)
    received: list[tuple[str, int]] = []
    last_id = position
    try:
        # Read a few events at a time, dropping the connection between reads, until all have come.
        deadline = time.monotonic() + 60
        while len(received) < 160 and time.monotonic() < deadline:
            url = server.url(f"/channels/{a},{b}/")
            headers = {**BROWSER_HEADERS, "Last-Event-ID": last_id}
            with httpx.Client(timeout=10) as client, client.stream("GET", url, headers=headers) as response:
                for line in response.iter_lines():
                    if line.startswith("id: "):
                        last_id = line[4:]
                    elif line.startswith("data: "):
                        received.append((last_id, json.loads(line[6:])["seq"]))
                        if len(received) % 7 == 0 or len(received) == 160:
                            break
    finally:
        publisher.wait(timeout=60)
    assert publisher.stdout is not None
    with publisher.stdout:
        published = [line.split() for line in publisher.stdout.read().splitlines()]
    expected = [(event_id, int(seq)) for event_id, name, seq in published if name in (a, b)]
    assert received == expected


def follow_mixed(url: str, events: list, messages: int) -> None:
    """Append each event of ``url`` to ``events`` as it arrives, until ``messages`` "message" events."""
    with httpx.Client(timeout=15) as client, client.stream("GET", url, headers=BROWSER_HEADERS) as response:
        for sse in EventSource(response).iter_sse():
            if sse.data == "" and sse.event == "message":
                continue  # the retry:/comment preamble
            events.append(sse)
            if sum(e.event == "message" for e in events) >= messages:
                return


@pytest.mark.parametrize("server_name", ["daphne", "uvicorn", "uvicorn-sse"])
def test_snapshot_first_then_own_events_interleaved_with_channel_events(servers, server_name):
    server, name = servers[server_name], channel()
    events: list = []
    before = subscribers(server)
    reader = pool.submit(follow_mixed, server.url(f"/mixed/{name}/"), events, 3)
    # Waiting on state: subscribed, and a few of the view's own ticks have arrived, so that the
    # channel events land between ticks.
    assert wait_for(lambda: (subscribers(server) > before and len(events) >= 3) or reader.done(), timeout=10)
    ids = publish(server, name, 3)
    reader.result(timeout=15)
    assert events[0].event == "snapshot"
    kinds = [e.event for e in events[1:]]
    assert "tick" in kinds and kinds.count("message") == 3
    assert [e.id for e in events if e.event == "message"] == ids
    first_message = kinds.index("message")
    assert "tick" in kinds[:first_message]


@pytest.mark.parametrize("server_name", ["daphne", "uvicorn", "gunicorn-gthread"])
def test_refusals_are_plain_text_and_nothing_is_streamed(servers, server_name):
    server = servers[server_name]
    cases = {
        "/channels/open,secret1/": (403, "You may not read channel 'secret1'."),
        "/channels/a,b,c,d,e,f/": (400, "Too many channels: 6, at most 5."),
        "/channels/bad%20name/": (400, "Invalid channel name 'bad name'"),
    }
    for path, (status, reason) in cases.items():
        response = httpx.get(server.url(path), headers=BROWSER_HEADERS, timeout=10)
        assert response.status_code == status
        assert response.headers["content-type"].startswith("text/plain")
        assert reason in response.text


@pytest.mark.parametrize(
    ("last_event_id", "reason"),
    [
        ("abc", "malformed"),
        ("-5", "malformed"),
        ("1e3", "malformed"),
        ("99999999999999999999999", "malformed"),
        ("\u00e9t\u00e9", "malformed"),
        ("9000000000000000000", "unknown"),
    ],
)
@pytest.mark.parametrize("server_name", ["daphne", "uvicorn"])
def test_bad_last_event_id_gets_a_reset_event_never_an_error(servers, server_name, last_event_id, reason):
    server, name = servers[server_name], channel()
    url = server.url(f"/channels/{name}/?lastEventId={httpx.QueryParams({'x': last_event_id})['x']}")
    [(_, reset)] = read_events(url, 1).events
    assert reset.event == "reset"
    assert reset.json() == {"reason": reason}
    assert reset.id.isdigit()  # the client resumes from here next time


@pytest.mark.parametrize("server_name", ["daphne", "uvicorn"])
def test_the_header_wins_over_the_query_parameter(servers, server_name):
    server, name = servers[server_name], channel()
    ids = publish(server, name, 2)
    url = server.url(f"/channels/{name}/?lastEventId=garbage")
    received = read_events(url, 1, headers={"Last-Event-ID": ids[0]})
    assert [sse.id for _, sse in received.events] == ids[1:]
