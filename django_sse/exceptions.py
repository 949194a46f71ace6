"""Exceptions django-sse raises for you to catch."""

from __future__ import annotations

from .event import Event

__all__ = ["PublishError"]


class PublishError(Exception):
    """The event was stored, but could not be announced to the other processes right now.

    Clients still get it: their streams ended when the backend lost its
    connection, and they replay from history when they reconnect. ``event``
    is the stored event, with its id.
    """

    def __init__(self, event: Event, reason: str) -> None:
        super().__init__(f"Event {event.id} was stored but not announced: {reason}")
        self.event = event
