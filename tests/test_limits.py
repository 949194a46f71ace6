"""django_sse.limits on its own: counting open streams, refusing past the limits, logging a burst once."""

from __future__ import annotations

import gc
import logging

import pytest

from django_sse import limits
from django_sse.delivery import bridge
from django_sse.limits import StreamSlot, open_streams, refusal, refused_streams


@pytest.fixture(autouse=True)
def small_limits(settings):
    gc.collect()  # slots other tests dropped are released now, not during this test
    settings.DJANGO_SSE = {"MAX_STREAMS": open_streams() + 2, "RETRY": 3500}


def test_slots_count_open_streams_until_released_or_collected():
    before = open_streams()
    first, second = StreamSlot(), StreamSlot()
    assert open_streams() == before + 2
    first.release()
    first.release()  # idempotent
    assert open_streams() == before + 1
    del second
    gc.collect()
    assert open_streams() == before


def test_past_max_streams_a_503_with_retry_after_in_whole_seconds(caplog):
    slots = [StreamSlot(), StreamSlot()]
    refused_before = refused_streams()
    with caplog.at_level(logging.WARNING, "django_sse"):
        response = refusal()
        again = refusal(retry=200)
    assert response is not None and again is not None
    assert response.status_code == 503 and response["Content-Type"].startswith("text/plain")
    assert response["Retry-After"] == "4"  # 3.5 s rounded up
    assert again["Retry-After"] == "1"  # at least one second
    assert b"MAX_STREAMS" in response.content
    assert refused_streams() == refused_before + 2
    # A burst of refusals is logged once.
    assert [r.getMessage() for r in caplog.records if "refusing new streams" in r.getMessage()] == [
        "django-sse: refusing new streams with 503: "
        f"{open_streams()} streams are open (MAX_STREAMS) in this process"
    ]
    for slot in slots:
        slot.release()
    assert refusal() is None  # room again: accepted, and the next burst is logged again
    assert limits._refusing is False


def test_sync_streams_past_max_sync_streams_are_refused(settings, monkeypatch):
    settings.DJANGO_SSE = {"MAX_SYNC_STREAMS": 1}
    monkeypatch.setattr(bridge, "sync_stream_threads", lambda: 1)
    response = refusal(sync=True)
    assert response is not None and b"MAX_SYNC_STREAMS" in response.content
    assert refusal(sync=False) is None  # an async stream needs no thread
