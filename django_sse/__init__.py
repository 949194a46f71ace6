"""Server-Sent Events for Django: every event reaches the client the moment it is yielded."""

from .event import Event
from .response import EventStreamResponse
from .views import EventStreamView

__all__ = ["Event", "EventStreamResponse", "EventStreamView"]
__version__ = "0.1.0"
