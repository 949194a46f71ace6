"""History in the project's database: ids, storage, replay and pruning."""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import router, transaction
from django.db.models import BigIntegerField, Func, Max, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from .delivery.hub import Delivery
from .event import Event
from .models import PublishLock, StoredEvent

__all__ = [
    "ADVISORY_LOCK_KEY",
    "Resume",
    "Row",
    "events_after",
    "id_of",
    "lock_publishing",
    "newest_id",
    "parse_last_event_id",
    "prune",
    "resume",
    "rows_after",
    "rows_announced",
    "store",
    "to_delivery",
    "to_event",
]

# Ids are positive 64-bit integers written in ASCII digits, as we issue them.
_ID = re.compile(r"[0-9]{1,19}")
_MAX_ID = 2**63 - 1


#: The PostgreSQL advisory lock that publishers of one database take in turn ("dj_sse_1").
ADVISORY_LOCK_KEY = 0x646A5F7373655F31


def store(channel: str, event: Event) -> Event:
    """Store ``event`` for ``channel``; return it with its new id.

    Ids are committed in the order they are given, so a reader that has seen
    id N has seen every id below N: publishers take turns from before the id
    is given until the commit (see :func:`lock_publishing`).
    """
    using = router.db_for_write(StoredEvent)
    with transaction.atomic(using=using):
        lock_publishing(using)
        row = StoredEvent.objects.using(using).create(
            channel=channel, event=event.event, data=event.data_text()
        )
    return Event(data=row.data, event=row.event, id=str(row.id))


def lock_publishing(using: str) -> None:
    """Make publishers of database ``using`` take turns until the current transaction ends.

    - PostgreSQL: a transaction-level advisory lock, which needs no row, so
      it holds after ``manage.py flush``, in ``TransactionTestCase`` and with
      ``--nomigrations``;
    - SQLite: nothing to do, it lets one writer in at a time;
    - any other database with ``SELECT ... FOR UPDATE``: the ``PublishLock``
      row, locked, and created again if it is missing (after a flush).
    """
    connection = transaction.get_connection(using)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
    elif connection.vendor != "sqlite" and connection.features.has_select_for_update:
        PublishLock.objects.using(using).select_for_update().get_or_create(id=1)


#: A stored event as read for delivery: ``(id, channel, event type, data text)``.
Row = tuple[int, str, str | None, str | None]


class _OctetLength(Func):
    """The size of a text column in bytes (``LENGTH`` counts characters)."""

    function = "OCTET_LENGTH"
    output_field = BigIntegerField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, template="LENGTH(CAST(%(expressions)s AS BLOB))", **extra)


#: What a row costs beyond its data, roughly: its id, event type and field names on the wire.
_ROW_OVERHEAD = 64


def rows_after(
    channels: Sequence[str] | None,
    after: int,
    limit: int,
    *,
    until: int | None = None,
    max_bytes: int | None = None,
) -> tuple[list[Row], bool]:
    """Up to ``limit`` stored events with ids above ``after``, oldest first, and whether more may follow.

    ``channels=None`` means every channel; ``until`` is the highest id wanted;
    ``max_bytes`` bounds the size of their data (one event is read however large it is).
    More may follow when the batch was cut by ``limit`` or ``max_bytes``.
    """
    rows = StoredEvent.objects.filter(id__gt=after).order_by("id")
    if until is not None:
        rows = rows.filter(id__lte=until)
    if channels is not None:
        rows = rows.filter(channel__in=channels)
    cut = False
    if max_bytes is not None:
        # The sizes first (a few bytes a row), then only the rows that fit.
        sizes = rows.annotate(size=Coalesce(_OctetLength("data"), 0)).values_list("id", "size")[:limit]
        last, total = None, 0
        for number, size in sizes:
            total += size + _ROW_OVERHEAD
            if total > max_bytes and last is not None:
                cut = True
                break
            last = number
        if last is None:
            return [], False
        rows = rows.filter(id__lte=last)
    found = list(rows.values_list("id", "channel", "event", "data")[:limit])
    return found, cut or len(found) == limit


#: Up to this many ids past the position, an announced range is read in one query, data and all.
NEAR = 8


def rows_announced(
    channels: Sequence[str] | None, after: int, announced: int, *, max_bytes: int
) -> tuple[list[Row], bool] | None:
    """The stored events above ``after`` up to ``announced`` (an id another process announced as
    committed), in one query, and whether more may follow; ``None`` when that cannot be told in one.

    Ids commit in order, so every id up to ``announced`` is visible once ``announced`` is: its own
    row is read too, whatever its channel, to prove it (``None`` when it is not stored: a forged,
    pruned or far announcement, for which the caller asks :func:`newest_id`). Only for a range
    of at most :data:`NEAR` ids, whose data is read at once and then cut to ``max_bytes`` (one event
    is kept however large it is).
    """
    if not 0 < announced - after <= NEAR:
        return None
    rows = StoredEvent.objects.filter(id__gt=after, id__lte=announced)
    if channels is not None:
        rows = rows.filter(Q(channel__in=channels) | Q(id=announced))
    found = list(rows.order_by("id").values_list("id", "channel", "event", "data"))
    if not found or found[-1][0] != announced:
        return None
    if channels is not None and found[-1][1] not in channels:
        found.pop()  # read as the proof only
    total = 0
    for index, row in enumerate(found):
        total += len((row[3] or "").encode()) + _ROW_OVERHEAD
        if total > max_bytes and index:
            return found[:index], True
    return found, False


def to_event(row: Row) -> Event:
    """The :class:`Event` of a :data:`Row`."""
    return Event(data=row[3], event=row[2], id=str(row[0]))


def to_delivery(row: Row) -> Delivery:
    """A :data:`Row` for the hub: its channel, its id (as the database gave it) and its event."""
    return Delivery(row[1], row[0], to_event(row))


def id_of(event: Event) -> int:
    """The id of a stored event (as :func:`store` returns it), as an int."""
    if event.id is None:
        raise ValueError(f"{event!r} was not stored: it has no id.")
    return int(event.id)


def events_after(
    channels: Sequence[str] | None, after: int, limit: int, *, until: int | None = None
) -> list[tuple[str, Event]]:
    """Up to ``limit`` stored ``(channel, event)`` pairs with ids above ``after``, oldest first."""
    rows, _ = rows_after(channels, after, limit, until=until)
    return [(row[1], to_event(row)) for row in rows]


def newest_id() -> int:
    """The highest id issued so far that is still stored, or 0."""
    # An aggregate reads its one row to the end: .first() would leave its cursor open, and an open
    # cursor keeps a read lock on the table in SQLite's shared-cache mode (Django's test databases).
    return StoredEvent.objects.aggregate(newest=Max("id"))["newest"] or 0


def parse_last_event_id(value: str | None) -> int | None:
    """The id a client sent back, or ``None`` if it is not one we could have issued."""
    if value is None or not _ID.fullmatch(value):
        return None
    number = int(value)
    return number if 0 <= number <= _MAX_ID else None


@dataclass(frozen=True)
class Resume:
    """Where a reconnecting stream resumes: after ``after``, or a reset with ``reason``."""

    after: int | None
    reason: str = ""


def resume(last_event_id: str | None, position: int) -> Resume:
    """Decide how a stream resumes ``last_event_id``; its live events start after ``position``."""
    after = parse_last_event_id(last_event_id)
    if after is None:
        return Resume(None, "malformed")
    if after > max(position, newest_id()):
        return Resume(None, "unknown")  # not issued here: another database, or a reset one
    oldest = StoredEvent.objects.aggregate(oldest=Min("id"))["oldest"]
    # Pruning deletes a prefix of ids: if the oldest kept is beyond after + 1, some are gone.
    if after < position and (oldest is None or oldest > after + 1):
        return Resume(None, "expired")
    return Resume(after)


def prune(*, max_events: int | None, max_age: datetime.timedelta | None) -> int:
    """Delete the oldest events beyond ``max_events`` or older than ``max_age``; return how many.

    Always a prefix of ids, so that a gap in history can be told apart from a pruned past, and
    never the newest event.
    """
    cutoff = 0
    if max_events is not None:
        kept = StoredEvent.objects.order_by("-id").values_list("id", flat=True)[max_events : max_events + 1]
        cutoff = max([cutoff, *kept])
    if max_age is not None:
        old = StoredEvent.objects.filter(created__lt=timezone.now() - max_age)
        cutoff = max(cutoff, old.aggregate(newest=Max("id"))["newest"] or 0)
        # The newest event stays, however old: it is how a process that starts later knows which
        # ids were issued, so that a client that has it resumes instead of getting an "unknown" reset.
        cutoff = min(cutoff, newest_id() - 1)
    if cutoff <= 0:
        return 0
    deleted: int = StoredEvent.objects.filter(id__lte=cutoff).delete()[0]
    return deleted
