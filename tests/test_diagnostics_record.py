"""django_sse.diagnostics.record: the decoder on its own, and record()/run() against a tiny HTTP server
of the test's own on 127.0.0.1 (a thread answering each connection with canned bytes)."""

from __future__ import annotations

import gzip
import socket
import sys
import threading
import types
import zlib
from collections.abc import Callable, Iterator

import pytest

from django_sse.diagnostics import Decoder, Recording, record, run
from tests.servers import free_port

PARTS = [b"retry: 3000\n\n", b": hi\n\n", b"id: 1\ndata: one\n\n", b"id: 2\ndata: two\n\n"]
EVENTS = b"".join(PARTS)


def gzip_stream(parts: list[bytes]) -> list[bytes]:
    """One gzip member, flushed after each part (what a compressor that flushes per event sends)."""
    compressor = zlib.compressobj(wbits=31)
    out = [compressor.compress(part) + compressor.flush(zlib.Z_SYNC_FLUSH) for part in parts]
    out[-1] += compressor.flush()
    return out


# The decoder.


def test_identity_passes_bytes_through():
    decoder = Decoder(None)
    assert decoder.feed(b"data: x\n\n") == b"data: x\n\n"
    assert (decoder.members, decoder.error) == (0, None)


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip"])
def test_gzip_decodes_as_bytes_arrive(encoding):
    decoder = Decoder(encoding)
    chunks = gzip_stream([b"data: one\n\n", b"data: two\n\n"])
    assert decoder.feed(chunks[0]) == b"data: one\n\n"  # flushed: decodable at once
    # Byte by byte, too.
    assert b"".join(decoder.feed(chunks[1][i : i + 1]) for i in range(len(chunks[1]))) == b"data: two\n\n"
    assert (decoder.members, decoder.error) == (1, None)


def test_gzip_members_are_counted_even_within_one_read():
    decoder = Decoder("gzip")
    members = [gzip.compress(f"data: {i}\n\n".encode()) for i in range(3)]
    assert decoder.feed(members[0] + members[1]) == b"data: 0\n\ndata: 1\n\n"
    assert decoder.feed(members[2]) == b"data: 2\n\n"
    assert decoder.members == 3


def test_deflate_is_zlib_wrapped():
    decoder = Decoder("deflate")
    assert decoder.feed(zlib.compress(b"data: x\n\n")) == b"data: x\n\n"
    assert (decoder.members, decoder.error) == (1, None)


def test_bytes_that_do_not_decode_stop_the_decoder():
    decoder = Decoder("gzip")
    assert decoder.feed(b"data: not gzip\n\n") == b""
    assert decoder.error is not None
    assert decoder.error.startswith("gzip that does not decode (")
    assert decoder.feed(gzip.compress(b"data: x\n\n")) == b""


def test_an_unknown_encoding_is_not_decoded():
    decoder = Decoder("zstd")
    assert decoder.error == "zstd, which this check cannot decode"
    assert decoder.feed(b"\x28\xb5\x2f\xfd") == b""


def test_brotli_without_the_brotli_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "brotli", None)  # import brotli raises ImportError
    decoder = Decoder("br")
    assert decoder.error == "br (Brotli), which this check decodes only with the brotli package installed"
    assert decoder.feed(b"\x0b\x02\x80") == b""


def test_brotli_is_decoded_with_the_brotli_package(monkeypatch):
    class Decompressor:
        def process(self, data: bytes) -> bytes:
            return data.upper()

    monkeypatch.setitem(sys.modules, "brotli", types.SimpleNamespace(Decompressor=Decompressor))
    decoder = Decoder("br")
    assert decoder.error is None
    assert decoder.feed(b"data: a\n\n") + decoder.feed(b"data: b\n\n") == b"DATA: A\n\nDATA: B\n\n"


def test_brotli_round_trip():
    import brotli  # in the test extra: the decoder's brotli path must not go untested by a skip

    compressed = brotli.compress(EVENTS)
    decoder = Decoder("br")
    assert b"".join(decoder.feed(compressed[i : i + 7]) for i in range(0, len(compressed), 7)) == EVENTS


# record() and run() against a server of the test's own.

Respond = Callable[[bytes, socket.socket], None]


class TinyServer:
    """Serves one connection at a time on 127.0.0.1: reads the request, then ``respond(request, conn)``."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._closing = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/events/?x=1"

    def _serve(self) -> None:
        while True:
            conn, _ = self._listener.accept()
            if self._closing:
                conn.close()
                return
            with conn:
                conn.settimeout(5)
                request = b""
                try:
                    while b"\r\n\r\n" not in request:
                        data = conn.recv(65536)
                        if not data:
                            break
                        request += data
                    self.requests.append(request)
                    self.respond(request, conn)
                except OSError:
                    pass

    def close(self) -> None:
        self._closing = True
        socket.create_connection(self._listener.getsockname(), timeout=5).close()  # wakes accept()
        self._thread.join(5)
        self._listener.close()
        assert not self._thread.is_alive()


@pytest.fixture
def serve() -> Iterator[Callable[[Respond], TinyServer]]:
    started: list[TinyServer] = []

    def start(respond: Respond) -> TinyServer:
        started.append(TinyServer(respond))
        return started[-1]

    yield start
    for server in started:
        server.close()


def until_closed(conn: socket.socket) -> None:
    """Keep the connection open (an endless stream) until the client closes it, 5 seconds at most."""
    while conn.recv(65536):
        pass


def head(*headers: str, status: str = "200 OK") -> bytes:
    return ("\r\n".join([f"HTTP/1.1 {status}", *headers]) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


STREAM = ("Content-Type: text/event-stream", "Cache-Control: no-cache")
CHUNKED = (*STREAM, "Transfer-Encoding: chunked")


def read(url: str, duration: float = 5.0, **kwargs) -> Recording:
    return record(url, {"Accept": "text/event-stream"}, duration=lambda rec: duration, **kwargs)


def test_a_chunked_gzip_stream_is_decoded_and_parsed(serve):
    def respond(request: bytes, conn: socket.socket) -> None:
        conn.sendall(head(*CHUNKED, "Content-Encoding: gzip"))
        for part in gzip_stream(PARTS):
            conn.sendall(chunk(part))
        conn.sendall(b"0\r\n\r\n")

    server = serve(respond)
    rec = read(server.url)
    assert server.requests[0].startswith(b"GET /events/?x=1 HTTP/1.1\r\n")
    assert b"accept-encoding" not in server.requests[0].lower()  # only what the caller sends
    assert (rec.status, rec.reason, rec.end, rec.error) == (200, "OK", "eof", None)
    assert (rec.encoding, rec.members, rec.undecodable) == ("gzip", 1, None)
    assert rec.header("content-encoding") == "gzip"
    assert [(a.event.id, a.event.data) for a in rec.events] == [("1", "one"), ("2", "two")]
    assert (rec.retry, rec.last_event_id, len(rec.comments)) == (3000, "2", 1)
    assert rec.body_bytes == len(EVENTS)
    assert rec.headers_at is not None and rec.first_byte_at is not None and rec.end_at is not None
    assert rec.headers_at <= rec.first_byte_at <= rec.events[0].at <= rec.events[-1].at <= rec.end_at


def test_a_gzip_member_per_chunk_is_counted(serve):
    def respond(request: bytes, conn: socket.socket) -> None:
        conn.sendall(head(*CHUNKED, "Content-Encoding: gzip"))
        for i in range(3):
            conn.sendall(chunk(gzip.compress(f"id: {i}\ndata: {i}\n\n".encode())))
        conn.sendall(b"0\r\n\r\n")

    rec = read(serve(respond).url)
    assert (rec.members, len(rec.events), rec.end) == (3, 3, "eof")


def test_an_identity_body_with_content_length(serve):
    def respond(request: bytes, conn: socket.socket) -> None:
        conn.sendall(head(*STREAM, "Content-Encoding: identity", f"Content-Length: {len(EVENTS)}") + EVENTS)

    rec = read(serve(respond).url)
    assert (rec.encoding, rec.members, rec.end, rec.body_bytes) == (None, 0, "eof", len(EVENTS))
    assert rec.header("Content-Length") == str(len(EVENTS))
    assert [a.event.data for a in rec.events] == ["one", "two"]


def test_each_read_gets_its_own_arrival_time(serve):
    # The server sends the second event only once the first was recorded: no sleeping on either side.
    first_recorded = threading.Event()

    def respond(request: bytes, conn: socket.socket) -> None:
        conn.sendall(head(*CHUNKED) + chunk(b"id: 1\ndata: one\n\n"))
        first_recorded.wait(5)
        conn.sendall(chunk(b"id: 2\ndata: two\n\n") + b"0\r\n\r\n")

    def stop(rec: Recording) -> bool:
        if rec.events:
            first_recorded.set()
        return False

    rec = read(serve(respond).url, stop=stop)
    assert [a.event.id for a in rec.events] == ["1", "2"]
    assert rec.events[0].at <= rec.events[1].at
    assert rec.last_byte_at == rec.events[1].at


def test_stop_ends_the_recording(serve):
    def respond(request: bytes, conn: socket.socket) -> None:
        conn.sendall(head(*CHUNKED) + chunk(b"id: 1\ndata: one\n\n"))
        until_closed(conn)

    rec = read(serve(respond).url, stop=lambda rec: bool(rec.events))
    assert (rec.end, len(rec.events)) == ("stopped", 1)


def test_a_body_that_is_not_an_event_stream_is_previewed(serve):
    body = b"django-sse diagnostics: allowed with DEBUG on"

    def respond(request: bytes, conn: socket.socket) -> None:
        conn.sendall(head("Content-Type: text/plain", f"Content-Length: {len(body)}", status="403 Forbidden"))
        conn.sendall(body)

    rec = read(serve(respond).url)
    assert (rec.status, rec.reason, rec.preview, rec.events) == (403, "Forbidden", body, [])


def test_a_connection_cut_mid_body(serve):
    def respond(request: bytes, conn: socket.socket) -> None:
        conn.sendall(head(*CHUNKED) + chunk(b"id: 1\ndata: one\n\n") + b"64\r\ndata: trunc")

    rec = read(serve(respond).url)
    assert rec.end == "cut"
    assert rec.error is not None and rec.error.startswith("IncompleteRead")
    assert [a.event.data for a in rec.events] == ["one"]


def test_no_response_within_the_duration(serve):
    rec = read(serve(lambda request, conn: until_closed(conn)).url, duration=0.2)
    assert (rec.end, rec.status, rec.headers_at) == ("timeout", None, None)


def test_no_connection_and_bad_urls_are_recorded_not_raised():
    refused = read(f"http://127.0.0.1:{free_port()}/")
    assert (refused.end, refused.status) == ("error", None)
    assert refused.error is not None and refused.error.startswith("ConnectionRefusedError")
    bad = read("ftp://127.0.0.1/")
    assert bad.error == "ValueError: not an http:// or https:// URL: 'ftp://127.0.0.1/'"


def test_run_reconnects_with_the_last_event_id(serve):
    def respond(request: bytes, conn: socket.socket) -> None:
        if b"\r\nLast-Event-ID: 2\r\n" in request:
            conn.sendall(head(*CHUNKED) + chunk(b"id: 3\ndata: three\n\n"))
            until_closed(conn)  # run() stops reading once it has an event
        else:
            conn.sendall(head(*STREAM, "Connection: close") + EVENTS)

    server = serve(respond)
    first, again = run(server.url, headers={"Accept": "text/event-stream"})
    assert (first.end, first.last_event_id) == ("eof", "2")
    assert again is not None
    assert (again.end, [a.event.id for a in again.events]) == ("stopped", ["3"])
    assert len(server.requests) == 2
    assert run(server.url, headers={}, reconnect=False)[1] is None
