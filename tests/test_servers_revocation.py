"""Revocation on real servers: ``sse_revoke`` (another process) and logout end exactly the streams
they name; their clients reconnect and meet the permission check again, and miss nothing."""

from __future__ import annotations

import re
import select
import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.servers import Server, environment, manage, start
from tests.sse_client import wait_for
from tests.streams_client import sse_stats

pytestmark = pytest.mark.xdist_group("revocation")

#: The end of a chunked body: the stream is over and the client's EventSource reconnects.
END = b"0\r\n\r\n"


@pytest.fixture(scope="module", params=["uvicorn", "daphne"])
def server(request) -> Iterator[Server]:
    # Sessions and auth in front, as in a project.
    started = start(request.param, env={**environment(), "SSE_TEST_MIDDLEWARE": "startproject"})
    try:
        yield started
    finally:
        started.stop()


def log_in(server: Server, username: str) -> str:
    response = httpx.post(server.url(f"/login/{username}/"), timeout=10)
    response.raise_for_status()
    return response.cookies["sessionid"]


class Stream:
    """One raw stream: everything the server sent, read as it comes."""

    def __init__(
        self, server: Server, path: str, *, session: str | None = None, last_event_id: str | None = None
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        headers = f"Cookie: sessionid={session}\r\n" if session else ""
        headers += f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
        self.received = b""

    def read_until(self, predicate, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate(self.received) and time.monotonic() < deadline:
            if select.select([self.sock], [], [], 0.1)[0]:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.received += chunk
        return predicate(self.received)

    def ended(self) -> bool:
        return self.received.endswith(END)

    def seqs(self) -> list[int]:
        return [int(n) for n in re.findall(rb'"seq": (\d+)', self.received)]

    def last_id(self) -> str:
        return re.findall(rb"^id: (\d+)", self.received.replace(b"\r\n", b"\n"), re.M)[-1].decode()

    def close(self) -> None:
        self.sock.close()


def subscribers(server: Server) -> int:
    return sse_stats(server.base_url)["subscribers"]


def publish(server: Server, channel: str, n: int = 1) -> None:
    httpx.post(server.url(f"/publish/{channel}/?n={n}"), timeout=10).raise_for_status()


def test_revoking_a_user_ends_only_their_streams_and_they_are_refused_on_reconnect(server):
    room, tag = f"r{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    alice, bob = f"alice{tag}", f"bob{tag}"
    alice_session, bob_session = log_in(server, alice), log_in(server, bob)
    before = sse_stats(server.base_url)
    streams = [
        Stream(server, f"/members/{room}/", session=s) for s in (alice_session, alice_session, bob_session)
    ]
    try:
        assert wait_for(lambda: subscribers(server) == before["subscribers"] + 3)
        publish(server, room)
        for stream in streams:
            assert stream.read_until(lambda data: b'"seq": 0' in data)

        httpx.post(server.url(f"/deactivate/{alice}/"), timeout=10).raise_for_status()
        revoked = manage("sse_revoke", "--user", alice)
        assert revoked.returncode == 0, revoked.stderr
        # Found by the server's dispatcher (another process revoked): both of alice's streams end.
        for stream in streams[:2]:
            assert stream.read_until(lambda data: data.endswith(END)), stream.received[-200:]
        publish(server, room)
        assert streams[2].read_until(lambda data: data.count(b'"seq": 0') == 2)
        assert not streams[2].ended()

        # Alice's EventSource reconnects with its Last-Event-ID: the permission check refuses her now.
        again = httpx.get(
            server.url(f"/members/{room}/"),
            headers={"Last-Event-ID": streams[0].last_id()},
            cookies={"sessionid": alice_session},
            timeout=10,
        )
        assert again.status_code == 403

        # Bob logs out (in the server process): his stream ends at once, and his old cookie is refused.
        httpx.post(server.url("/logout/"), cookies={"sessionid": bob_session}, timeout=10).raise_for_status()
        assert streams[2].read_until(lambda data: data.endswith(END))
        again = httpx.get(server.url(f"/members/{room}/"), cookies={"sessionid": bob_session}, timeout=10)
        assert again.status_code == 403
    finally:
        for stream in streams:
            stream.close()
    assert wait_for(lambda: subscribers(server) == before["subscribers"])
    assert sse_stats(server.base_url)["revoked"] == before["revoked"] + 3
    assert sse_stats(server.base_url)["slow_clients"] == before["slow_clients"]


def test_revoking_a_channel_ends_its_streams_after_what_came_before_and_replay_loses_nothing(server):
    room, other = f"r{uuid.uuid4().hex[:8]}", f"o{uuid.uuid4().hex[:8]}"
    before = sse_stats(server.base_url)
    in_room = [Stream(server, f"/channels/{room}/"), Stream(server, f"/channels/{room},{other}/")]
    elsewhere = Stream(server, f"/channels/{other}/")
    try:
        assert wait_for(lambda: subscribers(server) == before["subscribers"] + 3)
        publish(server, room, 3)
        revoked = manage("sse_revoke", "--channel", room)
        assert revoked.returncode == 0, revoked.stderr
        publish(server, room, 2)  # after the revocation: for the reconnecting clients' replay
        for stream in in_room:
            assert stream.read_until(lambda data: data.endswith(END)), stream.received[-200:]
            assert stream.seqs() == [0, 1, 2]  # what was published before it, then the end
        publish(server, other)
        assert elsewhere.read_until(lambda data: b'"seq": 0' in data)
        assert not elsewhere.ended()
        for stream in in_room:
            # The client reconnects with its Last-Event-ID: it gets what it missed, once each.
            resumed = Stream(server, f"/channels/{room}/", last_event_id=stream.last_id())
            try:
                assert resumed.read_until(lambda data: data.count(b'"seq"') >= 2)
                assert resumed.seqs() == [0, 1]
            finally:
                resumed.close()
    finally:
        for stream in [*in_room, elsewhere]:
            stream.close()
    assert wait_for(lambda: subscribers(server) == before["subscribers"])
    assert sse_stats(server.base_url)["revoked"] == before["revoked"] + 2
