"""The SSE wire format: the one place where events become bytes.

Follows the WHATWG HTML "Server-sent events" section: UTF-8, LF line
endings, one ``data:`` line per line of data, a blank line to dispatch.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

__all__ = ["HEARTBEAT", "Event", "EventParser", "encode", "encode_comment", "encode_retry"]

# The spec accepts CRLF, CR and LF as line ends; str.splitlines() would also
# split on U+2028, form feeds and others, which the spec treats as data.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

#: A comment line: browsers ignore it, proxies and dead sockets notice it.
HEARTBEAT = b":\n\n"


@dataclass(frozen=True)
class Event:
    """One server-sent event.

    ``data`` that is not a ``str`` is JSON-encoded with Django's
    ``DjangoJSONEncoder``; ``None`` means "no data field". ``id`` may be given
    as an ``int``; it is kept as ``str``. At construction, a field of the
    wrong type (or ``data`` that cannot be JSON-encoded) raises ``TypeError``
    and an invalid value (CR or LF in ``event`` or ``id``, NUL in ``id``, a
    negative ``retry``, no field at all) raises ``ValueError``; the message
    names the field. So does text that is not valid Unicode (a lone
    surrogate such as ``"\\ud800"``), which raises ``ValueError``.
    """

    data: Any = None
    event: str | None = None
    #: A ``str``; an ``int`` given here is converted to one.
    id: str | None = None
    retry: int | None = None
    comment: str | None = None
    _encoded: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.id, int) and not isinstance(self.id, bool):
            object.__setattr__(self, "id", str(self.id))
        _check_line("event", self.event, forbid_nul=False)
        _check_line("id", self.id, forbid_nul=True)
        if self.retry is not None:
            if not isinstance(self.retry, int) or isinstance(self.retry, bool):
                raise TypeError(f"Event.retry must be an int (milliseconds), got {type(self.retry).__name__}")
            if self.retry < 0:
                raise ValueError(f"Event.retry must not be negative, got {self.retry}")
        if self.comment is not None and not isinstance(self.comment, str):
            raise TypeError(f"Event.comment must be a str, got {type(self.comment).__name__}")
        if all(v is None for v in (self.data, self.event, self.id, self.retry, self.comment)):
            raise ValueError("Event needs at least one of data, event, id, retry or comment")
        # Encoded once, so publishing to many clients costs one encoding.
        object.__setattr__(self, "_encoded", self._encode())

    def data_text(self) -> str | None:
        """``data`` as the text clients receive (JSON for non-``str``), or ``None``."""
        if self.data is None or isinstance(self.data, str):
            return self.data
        return _to_json(self.data)

    def encode(self) -> bytes:
        """Return the event in wire format, ending with the blank line that dispatches it."""
        return self._encoded

    def _encode(self) -> bytes:
        lines: list[str] = []
        if self.comment is not None:
            lines += [f": {line}" if line else ":" for line in _LINE_BREAK.split(self.comment)]
        if self.event is not None:
            lines.append(f"event: {self.event}")
        if self.id is not None:
            lines.append(f"id: {self.id}")
        if self.retry is not None:
            lines.append(f"retry: {self.retry}")
        text = self.data_text()
        if text is not None:
            lines += [f"data: {line}" for line in _LINE_BREAK.split(text)]
        try:
            return ("\n".join(lines) + "\n\n").encode("utf-8")
        except UnicodeEncodeError:
            for name in ("data", "event", "id", "comment"):
                value = text if name == "data" else getattr(self, name)
                if isinstance(value, str) and not _encodable(value):
                    raise ValueError(
                        f"Event.{name} is not valid Unicode text (a lone surrogate?): {value!r}"
                    ) from None
            raise


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _to_json(data: object) -> str:
    try:
        return json.dumps(data, cls=DjangoJSONEncoder, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Event.data must be a str or JSON-serialisable: {exc}") from exc


def _check_line(name: str, value: object, *, forbid_nul: bool) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"Event.{name} must be a str, got {type(value).__name__}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"Event.{name} must not contain CR or LF: {value!r}")
    if forbid_nul and "\0" in value:
        # Browsers silently ignore an id containing NUL.
        raise ValueError(f"Event.{name} must not contain NUL: {value!r}")


def encode(item: object) -> bytes:
    """Encode what a stream yields: an ``Event``, or anything else as an event's ``data``."""
    if isinstance(item, Event):
        return item.encode()
    return Event(data=item).encode()


def encode_comment(text: str = "") -> bytes:
    """Encode a comment block (ignored by clients)."""
    return Event(comment=text).encode()


def encode_retry(milliseconds: int) -> bytes:
    """Encode a bare ``retry:`` field: sets the client's reconnection delay, fires no event."""
    return Event(retry=milliseconds).encode()


class EventParser:
    """Reads a stream the way a browser's ``EventSource`` does (for tests and diagnostics).

    ``feed()`` takes bytes as they arrive and returns the events they
    complete, as browsers dispatch them: events with data only, each with the
    stream's last event id at the time. Comments, ``retry`` and id-only blocks
    update state without producing an event; ``retry`` and ``last_event_id``
    keep the latest values.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._started = False
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._data: list[str] = []
        self._event = ""
        self._id_buffer = ""
        self.last_event_id = ""
        self.retry: int | None = None
        self.comments = 0

    def feed(self, chunk: bytes) -> list[Event]:
        text = self._pending + self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        # A CR at the end may be the first half of a CRLF: keep it for the next chunk.
        lines = _LINE_BREAK.split(text[:-1] if text.endswith("\r") else text)
        self._pending = lines.pop() + ("\r" if text.endswith("\r") else "")
        events = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> Event | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> Event | None:
        self.last_event_id = self._id_buffer
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return Event(data="\n".join(data), event=event or "message", id=self.last_event_id or None)
