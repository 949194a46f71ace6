"""A real redis-server for the tests: on a free 127.0.0.1 port, stopped by its PID."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.servers import ProcessHandle, free_port


class Redis(ProcessHandle):
    """A running redis-server; its log is redis.log in its temp ``directory``."""

    def __init__(self, port: int, process: subprocess.Popen[bytes], directory: str) -> None:
        super().__init__("redis-server", port, process, Path(directory) / "redis.log")
        self.directory = directory

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *args: str) -> str:
        """One command through redis-cli-free RESP over a socket; returns the raw reply."""
        parts = [f"*{len(args)}\r\n"] + [f"${len(a.encode())}\r\n{a}\r\n" for a in args]
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall("".join(parts).encode())
            reply = b""
            sock.settimeout(0.5)
            try:
                while chunk := sock.recv(65536):
                    reply += chunk
            except TimeoutError:
                pass
        return reply.decode(errors="replace")

    def publishes(self) -> int:
        """How many PUBLISH commands this server has executed."""
        for line in self.command("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_publish:"):
                return int(line.split("calls=")[1].split(",")[0])
        return 0


def start_redis(port: int | None = None) -> Redis:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: .ci/setup installs Debian's redis-server")
    port = port or free_port()
    directory = tempfile.mkdtemp(prefix="sse-redis-")
    with open(Path(directory) / "redis.log", "wb") as log:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                directory,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    redis = Redis(port, process, directory)
    redis.wait_ready(lambda: "PONG" in redis.command("PING"), timeout=10, interval=0.05)
    return redis
