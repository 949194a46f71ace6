"""Revocation: end the open streams of a channel, or of a key such as a user or a session, in every process.

An ended stream's client reconnects (after ``retry``) with its ``Last-Event-ID``,
and meets ``get_channels()`` and ``has_channel_permission()`` again: a user who
may no longer read a channel gets 403, one who may gets every event it missed.
Revocations travel like events, through history and the backend, so every
process applies them in order with the events: a stream gets the events
published before the revocation and none after.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async

from . import history
from .backends import get_backend
from .channel_names import validate_channel
from .conf import get_settings
from .delivery.hub import REVOCATION_CHANNEL
from .event import Event
from .exceptions import PublishError

__all__ = ["arevoke", "revoke", "revoke_session_on_logout", "session_key", "user_key"]

logger = logging.getLogger("django_sse")


def user_key(user: Any) -> str:
    """The revocation key of ``user``'s streams (one of the default keys of a logged-in request)."""
    return f"user:{user.pk}"


def session_key(key: str) -> str:
    """The revocation key of the streams of the session ``key`` (``request.session.session_key``)."""
    return f"session:{key}"


def revoke(*, channel: str | None = None, key: str | None = None) -> None:
    """End every open stream of ``channel``, or with ``key``, or (both given) of ``channel`` with ``key``.

    In every process of the deployment, through the configured backend.
    Inside a transaction it takes effect when the transaction commits.
    Raises ``ValueError`` when neither is given, for a bad channel name or
    an empty key; :class:`~django_sse.PublishError` as ``publish()`` does.
    """
    if channel is None and key is None:
        raise ValueError("revoke() needs a channel, a key, or both.")
    if channel is not None:
        validate_channel(channel)
    if key is not None and (not isinstance(key, str) or not key):
        raise ValueError(f"A revocation key must be a non-empty str, got {key!r}.")
    revocation = Event(data={"channel": channel, "key": key})
    if get_settings().history:
        revocation = history.store(REVOCATION_CHANNEL, revocation)
    get_backend().publish(REVOCATION_CHANNEL, revocation)


async def arevoke(*, channel: str | None = None, key: str | None = None) -> None:
    """``revoke`` for async code."""
    await sync_to_async(revoke)(channel=channel, key=key)


def revoke_session_on_logout(sender: object, request: Any = None, **kwargs: object) -> None:
    """End the logged-out session's streams (connected to ``user_logged_out``)."""
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if not key:
        return
    try:
        revoke(key=session_key(key))
    except PublishError as exc:  # stored, and streams end with the outage anyway: the logout goes on
        logger.warning("django-sse: %s", exc)
