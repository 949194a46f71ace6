"""The wire format, checked against an independent SSE parser (httpx-sse) and the WHATWG rules."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid

import httpx
import pytest
from httpx_sse import EventSource
from hypothesis import given
from hypothesis import strategies as st

from django_sse import Event
from django_sse.event import HEARTBEAT, EventParser, encode, encode_comment, encode_retry


def parse(wire: bytes) -> list:
    """What a spec-following client makes of the bytes."""
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=wire)
    return list(EventSource(response).iter_sse())


def test_data_only():
    assert Event(data="hello").encode() == b"data: hello\n\n"


def test_all_fields_in_order():
    event = Event(data="x", event="tick", id="7", retry=1500, comment="note")
    assert event.encode() == b": note\nevent: tick\nid: 7\nretry: 1500\ndata: x\n\n"


@pytest.mark.parametrize("data", ["a\nb", "a\rb", "a\r\nb"])
def test_every_line_break_in_data_becomes_its_own_data_line(data):
    assert Event(data=data).encode() == b"data: a\ndata: b\n\n"
    [sse] = parse(Event(data=data).encode())
    assert sse.data == "a\nb"


def test_unicode_line_separators_are_data_not_line_breaks():
    # str.splitlines() would split these; the SSE spec does not.
    text = "a\u2028b\x0bc\x1cd\x85e"
    [sse] = parse(Event(data=text).encode())
    assert sse.data == text


def test_non_str_data_is_json_with_django_encoder():
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    key = uuid.UUID(int=1)
    event = Event(data={"at": moment, "price": decimal.Decimal("1.50"), "key": key, "n": [1, None]})
    [sse] = parse(event.encode())
    assert json.loads(sse.data) == {
        "at": "2026-01-02T03:04:05Z",
        "price": "1.50",
        "key": str(key),
        "n": [1, None],
    }


def test_empty_string_data_is_an_event_with_empty_data():
    assert Event(data="").encode() == b"data: \n\n"


def test_int_id_is_kept_as_str():
    assert Event(data="x", id=42).id == "42"  # type: ignore[arg-type]


def test_leading_space_in_data_survives():
    [sse] = parse(Event(data="  two spaces").encode())
    assert sse.data == "  two spaces"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"data": "x", "event": "a\nb"}, "event"),
        ({"data": "x", "event": "a\rb"}, "event"),
        ({"data": "x", "id": "1\n2"}, "id"),
        ({"data": "x", "id": "1\r"}, "id"),
        ({"data": "x", "id": "1\x002"}, "id"),
        ({"data": "x", "retry": -1}, "retry"),
    ],
)
def test_invalid_fields_raise_value_error_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"Event\.{field}"):
        Event(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"event": 1}, "event"),
        ({"id": 1.5}, "id"),
        ({"comment": 3}, "comment"),
        ({"retry": 1.5}, "retry"),
        ({"retry": True}, "retry"),
        ({"retry": "100"}, "retry"),
    ],
)
def test_wrong_types_raise_type_error_naming_the_field(kwargs, field):
    with pytest.raises(TypeError, match=rf"Event\.{field}"):
        Event(data="x", **kwargs)


# NaN and infinities are not JSON: a browser's JSON.parse would reject them.
@pytest.mark.parametrize("data", [b"bytes", object(), {1, 2}, float("nan"), [float("inf")]])
def test_data_that_is_not_json_raises_type_error_naming_data(data):
    with pytest.raises(TypeError, match=r"Event\.data"):
        Event(data=data)


def test_an_event_with_nothing_in_it_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        Event()


def test_nul_in_event_name_is_allowed_and_survives():
    [sse] = parse(Event(data="x", event="a\x00b").encode())
    assert sse.event == "a\x00b"


def test_comment_and_heartbeat_and_retry_dispatch_nothing():
    assert parse(HEARTBEAT + encode_comment("two\nlines")) == []
    assert encode_comment("two\nlines") == b": two\n: lines\n\n"
    # httpx-sse reports a retry-only block as an empty event (browsers dispatch nothing).
    retry_block, sse = parse(encode_retry(2500) + encode("after"))
    assert (retry_block.data, retry_block.retry) == ("", 2500)
    assert sse.data == "after"


def test_encode_accepts_events_and_plain_values():
    assert encode(Event(data="x")) == b"data: x\n\n"
    assert encode("x") == b"data: x\n\n"
    assert encode([1, 2]) == b"data: [1, 2]\n\n"


# Property-based: any text survives the round trip; names and ids do too.
line_text = st.text().filter(lambda s: "\r" not in s and "\n" not in s)


@given(data=st.text(), event=line_text, id=line_text.filter(lambda s: "\0" not in s))
def test_round_trip_through_an_independent_parser(data, event, id):
    [sse] = parse(Event(data=data, event=event or None, id=id).encode())
    assert sse.data == data.replace("\r\n", "\n").replace("\r", "\n")
    assert sse.event == (event or "message")
    assert sse.id == id


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_events_stay_separate(datas):
    parsed = parse(b"".join(Event(data=d).encode() for d in datas))
    assert [sse.data for sse in parsed] == [d.replace("\r\n", "\n").replace("\r", "\n") for d in datas]


@given(st.tuples(st.text(), st.sampled_from(["\r", "\n", "\r\n"]), st.text()).map("".join))
def test_line_breaks_in_event_or_id_are_always_refused(text):
    with pytest.raises(ValueError):
        Event(data="x", event=text)
    with pytest.raises(ValueError):
        Event(data="x", id=text)


# Our own parser (for tests and diagnostics) must agree with httpx-sse on what we send.
@given(
    st.lists(st.tuples(st.text(), line_text, st.integers(0, 10**6)), min_size=1, max_size=4),
    st.integers(1, 7),
)
def test_event_parser_agrees_with_httpx_sse_whatever_the_chunking(events, chunk_size):
    wire = b"".join(Event(data=d, event=e or None, id=str(i)).encode() for d, e, i in events)
    parser = EventParser()
    ours = [
        ev
        for start in range(0, len(wire), chunk_size)
        for ev in parser.feed(wire[start : start + chunk_size])
    ]
    theirs = parse(wire)
    assert [(e.data, e.event, e.id) for e in ours] == [(s.data, s.event, s.id) for s in theirs]


def test_event_parser_follows_the_browser_rules():
    parser = EventParser()
    wire = (
        b"\xef\xbb\xbfretry: 500\r\n\r\n: comment\rid: 7\r\r"
        b"data:no space\ndata:  two\nid: a\x00b\nfoo: bar\n\n"
    )
    [event] = parser.feed(wire)
    assert (event.data, event.event, event.id) == ("no space\n two", "message", "7")
    assert (parser.retry, parser.comments, parser.last_event_id) == (500, 1, "7")
    assert parser.feed(b"data: incomplete") == []  # dispatched only by a blank line


@pytest.mark.parametrize("field", ["data", "event", "id", "comment"])
def test_a_lone_surrogate_is_refused_naming_the_field(field):
    with pytest.raises(ValueError, match=f"Event.{field} is not valid Unicode text"):
        Event(**{field: "a\ud800b"})  # type: ignore[arg-type]
    # In JSON data it is escaped, as JSON allows.
    assert Event(data={"x": "\ud800"}).encode() == b'data: {"x": "\\ud800"}\n\n'
