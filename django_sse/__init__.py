"""Server-Sent Events for Django: every event reaches the client the moment it is yielded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .event import Event
from .exceptions import PublishError
from .response import EventStreamResponse

if TYPE_CHECKING:
    from .publishing import apublish, publish
    from .revocation import arevoke, revoke
    from .views import EventStreamView

__all__ = [
    "Event",
    "EventStreamResponse",
    "EventStreamView",
    "PublishError",
    "apublish",
    "arevoke",
    "publish",
    "revoke",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # These use the models, which cannot be imported before the app registry is ready,
    # and this package is imported while INSTALLED_APPS is being read.
    if name == "EventStreamView":
        from .views import EventStreamView

        return EventStreamView
    if name in ("publish", "apublish"):
        from . import publishing

        return getattr(publishing, name)
    if name in ("revoke", "arevoke"):
        from . import revocation

        return getattr(revocation, name)
    raise AttributeError(f"module 'django_sse' has no attribute {name!r}")
