"""The documented gunicorn limitation: the sync worker's timeout kills a stream; gthread's does not."""

from __future__ import annotations

import httpx
import pytest

from tests.servers import start
from tests.sse_client import read_events


@pytest.mark.parametrize(("worker", "survives"), [("gunicorn-sync", False), ("gunicorn-gthread", True)])
def test_worker_timeout(worker, survives):
    server = start(worker, extra_args=("--timeout", "2"))
    try:
        url = server.url("/sync/?n=12&interval=0.4")  # 4.8 s of events, well past the 2 s timeout
        if survives:
            assert [d["i"] for d in read_events(url, 12).data()] == list(range(12))
        else:
            with pytest.raises(httpx.RemoteProtocolError):  # cut mid-stream, no terminating chunk
                read_events(url, 12)
            assert "WORKER TIMEOUT" in server.log()
    finally:
        server.stop()
