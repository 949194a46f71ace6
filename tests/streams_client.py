"""Many open streams from one test: plain sockets, and what the server process holds meanwhile."""

from __future__ import annotations

import os
import select
import socket
import time
from pathlib import Path

import httpx


def open_streams(port: int, path: str, count: int, *, headers: str = "") -> list[socket.socket]:
    """Send ``count`` GET requests for ``path`` on sockets of their own, left open (not read)."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{headers}\r\n".encode()
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(request)
        sockets.append(sock)
    return sockets


def read_until(sockets: list[socket.socket], marker: bytes, *, timeout: float = 30.0) -> int:
    """Read every socket until ``marker`` has arrived on it (bounded by ``timeout``); how many got it."""
    received = {sock: b"" for sock in sockets}
    waiting = set(sockets)
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        readable, _, _ = select.select(list(waiting)[:500], [], [], 0.2)
        for sock in readable:
            chunk = sock.recv(65536)
            received[sock] += chunk
            if marker in received[sock] or not chunk:
                waiting.discard(sock)
    return sum(marker in data for data in received.values())


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def threads(pid: int) -> int:
    """Threads of process ``pid``, as the kernel counts them."""
    return len(os.listdir(f"/proc/{pid}/task"))


def open_files(pid: int, prefix: str) -> int:
    """File descriptors of ``pid`` open on files whose path starts with ``prefix`` (e.g. a database)."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd).startswith(prefix):
                count += 1
        except OSError:
            pass  # closed meanwhile
    return count


def sse_stats(base_url: str) -> dict:
    return httpx.get(base_url + "/sse-stats/", timeout=10).json()
