"""Per-event delivery latency of django-sse streams against plain Django, on daphne and on uvicorn.

Run from the repository root: ``.venv/bin/python bench/latency.py [--events N] [--interval-ms MS]``.
Each event carries the server's ``time.time()`` at yield; the client notes its arrival time; the
latency is the difference (client and server share the machine's clock). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from importlib.metadata import version

import httpx
from harness import serve
from httpx_sse import connect_sse

SSE = "benchproject.settings"  # GZipMiddleware + EventStreamMiddleware
PLAIN = "benchproject.settings_plain"  # no django-sse, no GZip: plain Django at its best
SERVERS = ("daphne", "uvicorn")

BASELINE = "plain async (baseline)"
#: (label, settings module, path); every row is compared with BASELINE on the same server.
STREAMS: list[tuple[str, str, str]] = [
    ("django-sse sync view", SSE, "/sse/sync/"),
    ("django-sse async view", SSE, "/sse/async/"),
    ("hand-built sync + middleware", SSE, "/plain/sync/"),
    ("hand-built async + middleware", SSE, "/plain/async/"),
    (BASELINE, PLAIN, "/plain/async/"),
    ("plain sync (no django-sse)", PLAIN, "/plain/sync/"),
]
WARMUP_EVENTS = 5


def measure(client: httpx.Client, url: str, n: int, interval: float) -> tuple[list[float], str]:
    """Latencies (seconds) of ``n`` events from ``url``, and the response's Content-Encoding."""
    latencies: list[float] = []
    params = {"n": n, "interval": interval}
    with connect_sse(client, "GET", url, params=params) as source:
        source.response.raise_for_status()
        encoding = source.response.headers.get("content-encoding", "-")
        for sse in source.iter_sse():
            arrived = time.time()
            if not sse.data:  # retry:-only or comment blocks, which browsers do not dispatch either
                continue
            latencies.append(arrived - json.loads(sse.data)["t"])
            if len(latencies) == n:
                break
    if len(latencies) != n:
        raise RuntimeError(f"{url}: got {len(latencies)} of {n} events")
    return latencies, encoding


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200, help="events per stream (default 200)")
    parser.add_argument("--interval-ms", type=float, default=20.0, help="ms between events (default 20)")
    args = parser.parse_args()
    n, interval = max(1, args.events), args.interval_ms / 1000
    # Read timeout: the slowest row (Django's list collection) sends everything only at the end.
    timeout = httpx.Timeout(5.0, read=n * interval + 30)
    headers = {"Accept-Encoding": "gzip"}  # as browsers do: GZipMiddleware would compress if it could

    packages = ", ".join(f"{p} {version(p)}" for p in ("django", "daphne", "uvicorn", "httpx"))
    print(f"Python {platform.python_version()}, {packages}; {os.cpu_count()} CPUs")
    print(f"{n} events per stream, {args.interval_ms:g} ms apart, after {WARMUP_EVENTS} warm-up events\n")

    results: dict[tuple[str, str], tuple[list[float], str]] = {}
    for server in SERVERS:
        for settings in (SSE, PLAIN):
            with (
                serve(server, settings) as running,
                httpx.Client(trust_env=False, timeout=timeout, headers=headers) as client,
            ):
                for label, stream_settings, path in STREAMS:
                    if stream_settings == settings:
                        measure(client, running.base + path, WARMUP_EVENTS, interval)
                        results[server, label] = measure(client, running.base + path, n, interval)

    row = "{:<8} {:<30} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9}  {}"
    print(row.format("server", "stream", "n", "p50 ms", "p99 ms", "max ms", "p50/base", "p99/base", "gzip"))
    for server in SERVERS:
        base_p50, base_p99 = (percentile(results[server, BASELINE][0], p) for p in (50, 99))
        for label, *_ in STREAMS:
            latencies, encoding = results[server, label]
            p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
            print(
                row.format(
                    server,
                    label,
                    len(latencies),
                    f"{p50 * 1000:.2f}",
                    f"{p99 * 1000:.2f}",
                    f"{max(latencies) * 1000:.2f}",
                    f"{p50 / base_p50:.2f}x",
                    f"{p99 / base_p99:.2f}x",
                    "yes" if encoding == "gzip" else "no",
                )
            )


if __name__ == "__main__":
    main()
