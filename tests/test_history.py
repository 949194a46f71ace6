from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from django_sse import Event, history
from django_sse.models import StoredEvent

pytestmark = pytest.mark.django_db


def store(n, channel="c"):
    return [history.store(channel, Event(data={"n": i})) for i in range(n)]


def test_ids_strictly_increase_across_channels():
    ids = [id_of(history.store(c, Event(data="x"))) for c in ["a", "b", "a", "c"]]
    assert ids == sorted(ids) and len(set(ids)) == 4


def test_stored_event_round_trips_to_the_same_bytes():
    stored = history.store("c", Event(data={"a": [1, 2]}, event="update"))
    [(channel, again)] = history.events_after(["c"], id_of(stored) - 1, 10)
    assert channel == "c" and again.encode() == stored.encode()


def test_events_after_filters_channels_in_id_order():
    a1 = history.store("a", Event(data="1"))
    history.store("b", Event(data="2"))
    a3 = history.store("a", Event(data="3"))
    assert [e.id for _, e in history.events_after(["a"], 0, 10)] == [a1.id, a3.id]
    assert len(history.events_after(None, 0, 10)) == 3
    assert history.events_after(["a"], id_of(a3), 10) == []


@pytest.mark.parametrize(
    "value", [None, "", "abc", "-1", "+1", "1.0", " 1", "1 ", "\u0661", "1" * 20, "9" * 19]
)
def test_parse_last_event_id_refuses_what_we_never_issue(value):
    assert history.parse_last_event_id(value) is None


def test_parse_last_event_id_accepts_our_ids():
    assert history.parse_last_event_id("0") == 0
    assert history.parse_last_event_id("42") == 42


def test_resume():
    first, second = store(2)
    newest = id_of(second)
    assert history.resume(first.id, newest) == history.Resume(id_of(first))
    assert history.resume(second.id, newest) == history.Resume(newest)
    assert history.resume("nope", newest).reason == "malformed"
    assert history.resume(str(newest + 5), newest).reason == "unknown"


def test_resume_after_pruning_is_expired():
    events = store(5)
    history.prune(max_events=2, max_age=None)
    newest = id_of(events[-1])
    assert history.resume(events[0].id, newest).reason == "expired"
    assert history.resume(events[2].id, newest).after == id_of(events[2])  # nothing missing after it


def test_prune_by_count_and_age_deletes_a_prefix():
    events = store(6)
    StoredEvent.objects.filter(id__lte=events[1].id).update(
        created=timezone.now() - datetime.timedelta(hours=2)
    )
    assert history.prune(max_events=None, max_age=datetime.timedelta(hours=1)) == 2
    assert history.prune(max_events=3, max_age=None) == 1
    assert list(StoredEvent.objects.values_list("id", flat=True)) == [id_of(e) for e in events[3:]]
    assert history.prune(max_events=None, max_age=None) == 0


def id_of(event: Event) -> int:
    assert event.id is not None
    return int(event.id)


def test_rows_after_bounded_in_bytes_reads_a_prefix_and_says_more_may_follow():
    big = [history.store("c", Event(data="é" * 500)) for _ in range(5)]  # 1000 bytes of data each
    rows, more = history.rows_after(["c"], 0, 100, max_bytes=2500)
    assert [str(r[0]) for r in rows] == [e.id for e in big[:2]] and more  # bytes, not characters
    rows, more = history.rows_after(["c"], int(big[3].id or 0), 100, max_bytes=2500)
    assert [str(r[0]) for r in rows] == [big[4].id] and not more


def test_rows_after_reads_one_event_larger_than_max_bytes():
    huge = history.store("c", Event(data="x" * 10_000))
    history.store("c", Event(data="y"))
    rows, more = history.rows_after(["c"], 0, 100, max_bytes=100)
    assert [str(r[0]) for r in rows] == [huge.id] and more
    assert history.to_event(rows[0]).encode() == huge.encode()


def ids(rows):
    return [str(row[0]) for row in rows]


def announced(channels, after, newest, *, max_bytes=10_000):
    found = history.rows_announced(channels, after, newest, max_bytes=max_bytes)
    assert found is not None
    return found


def test_rows_announced_reads_an_announced_event_in_one_query(django_assert_num_queries):
    first, second = store(2)
    with django_assert_num_queries(1):
        rows, more = announced(["c"], int(first.id or 0), int(second.id or 0))
    assert ids(rows) == [second.id] and not more
    rows, more = announced(None, 0, int(second.id or 0))
    assert ids(rows) == [first.id, second.id] and not more


def test_rows_announced_of_another_channel_proves_the_range_and_delivers_nothing():
    mine = history.store("c", Event(data=1))
    theirs = history.store("other", Event(data=2))
    rows, more = announced(["c"], 0, int(theirs.id or 0))
    assert ids(rows) == [mine.id] and not more


def test_rows_announced_not_stored_or_far_is_left_to_the_general_read():
    (event,) = store(1)
    number = int(event.id or 0)
    assert history.rows_announced(["c"], 0, number + 1, max_bytes=10_000) is None  # forged, or not yet
    assert history.rows_announced(["c"], number, number, max_bytes=10_000) is None  # nothing to read
    far = store(history.NEAR + 1)
    assert history.rows_announced(["c"], number, int(far[-1].id or 0), max_bytes=10_000) is None


def test_rows_announced_is_cut_to_max_bytes_keeping_one_event():
    big = [history.store("c", Event(data="é" * 500)) for _ in range(3)]  # 1000 bytes of data each
    rows, more = announced(["c"], 0, int(big[-1].id or 0), max_bytes=2500)
    assert ids(rows) == [e.id for e in big[:2]] and more
    rows, more = announced(["c"], 0, int(big[-1].id or 0), max_bytes=10)
    assert ids(rows) == [big[0].id] and more


def test_pruning_by_age_keeps_the_newest_event_so_an_up_to_date_client_is_not_reset():
    # Everything is older than MAX_AGE (a quiet day): a client that has the newest event has
    # missed nothing, and a server process that starts now must still know that id was issued.
    events = store(3)
    StoredEvent.objects.update(created=timezone.now() - datetime.timedelta(hours=2))
    assert history.prune(max_events=None, max_age=datetime.timedelta(hours=1)) == 2
    assert history.newest_id() == id_of(events[-1])
    assert history.resume(events[-1].id, history.newest_id()) == history.Resume(id_of(events[-1]))
    assert history.resume(events[0].id, history.newest_id()).reason == "expired"
    assert history.prune(max_events=None, max_age=datetime.timedelta(hours=1)) == 0  # still the newest
