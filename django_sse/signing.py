"""Signed subscription tokens: a URL that grants channels without a session cookie.

:func:`sign_subscription` makes a token naming some channels, an expiry and
optionally a user, signed with ``SECRET_KEY`` (``django.core.signing``);
:func:`verify_subscription` checks it and returns a :class:`SignedSubscription`.
An :class:`~django_sse.EventStreamView` with ``subscription_token`` set
accepts one in a query parameter (see :doc:`/cross-origin`).

A token is a bearer credential: whoever has it may read its channels until it
expires. Keep ``expires_in`` short and serve it over HTTPS only.
"""

from __future__ import annotations

import datetime
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from django.core import signing

from .channel_names import validate_channel

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

__all__ = [
    "DEFAULT_SALT",
    "MAX_TOKEN_LENGTH",
    "SignedSubscription",
    "SubscriptionTokenError",
    "sign_subscription",
    "verify_subscription",
]

#: The salt of subscription tokens unless another one is given: a token signed for another purpose
#: (with another salt) does not verify as a subscription.
DEFAULT_SALT = "django_sse.subscription"

#: Longest token :func:`verify_subscription` tries to decode; a longer one is ``"malformed"`` at once.
MAX_TOKEN_LENGTH = 4096

#: What a token looks like before its signature is checked: base64url (optionally after "." when
#: compressed), ":", a base64url signature.
_SHAPE = re.compile(r"\.?[A-Za-z0-9_-]+:[A-Za-z0-9_-]+")

_MESSAGES = {
    "expired": "Subscription token expired.",
    "tampered": "Subscription token tampered with: bad signature.",
    "malformed": "Subscription token malformed.",
}

_Reason = Literal["expired", "tampered", "malformed"]


class SubscriptionTokenError(ValueError):
    """A subscription token that does not verify.

    ``reason`` says why: ``"expired"`` (authentic, but past its expiry),
    ``"tampered"`` (the signature does not match: altered, or signed with
    another key or salt) or ``"malformed"`` (not a token at all, or too long).
    The message is a sentence fit for a ``403`` response body.
    """

    def __init__(self, reason: _Reason) -> None:
        super().__init__(_MESSAGES[reason])
        self.reason: _Reason = reason


@dataclass(frozen=True)
class SignedSubscription:
    """What a verified token grants."""

    #: The channels the token grants, in the order they were signed, each once.
    channels: tuple[str, ...]
    #: When the token expires (an aware UTC datetime).
    expires: datetime.datetime
    #: The primary key of the user the token was signed for, as a ``str``; ``None`` if none.
    user_id: str | None = None


def _now() -> float:
    return time.time()


def sign_subscription(
    channels: Sequence[str],
    *,
    expires_in: float | datetime.timedelta = 3600,
    user: AbstractBaseUser | int | str | None = None,
    salt: str = DEFAULT_SALT,
) -> str:
    """A URL-safe token granting ``channels`` for ``expires_in`` seconds (or a ``timedelta``).

    ``user`` (a user, or a primary key) is recorded in the token as
    :attr:`SignedSubscription.user_id`, for the view's ``has_channel_permission()``;
    it does not log anyone in. Raises ``ValueError`` for an invalid channel
    name, no channel at all, a ``str`` instead of a list, an expiry that is
    not a finite number, or a user without a primary key (unsaved or
    anonymous). Tokens are signed with ``SECRET_KEY`` (and verify with
    ``SECRET_KEY_FALLBACKS`` too) and ``salt``.
    """
    if isinstance(channels, (str, bytes)):
        raise ValueError(f"channels must be a list of names, not {channels!r}.")
    names = list(dict.fromkeys(validate_channel(name) for name in channels))
    if not names:
        raise ValueError("A subscription token must grant at least one channel.")
    seconds = expires_in.total_seconds() if isinstance(expires_in, datetime.timedelta) else expires_in
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise ValueError(f"expires_in must be a finite number of seconds or a timedelta, not {expires_in!r}.")
    # In milliseconds, rounded down: a token never outlives the expiry asked for.
    payload: dict[str, Any] = {"c": names, "e": math.floor((_now() + seconds) * 1000) / 1000}
    user_id = _user_id(user)
    if user_id is not None:
        payload["u"] = user_id
    return signing.Signer(salt=salt).sign_object(payload, compress=True)


def verify_subscription(token: str, *, salt: str = DEFAULT_SALT) -> SignedSubscription:
    """The :class:`SignedSubscription` that ``token`` grants; raises :class:`SubscriptionTokenError` if none.

    The signature is checked first (``"tampered"``), then the expiry
    (``"expired"``). Anything that is not a token of
    :func:`sign_subscription`'s, including one longer than
    ``MAX_TOKEN_LENGTH`` characters, is ``"malformed"``; nothing else is
    raised.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not _SHAPE.fullmatch(token):
        raise SubscriptionTokenError("malformed")
    try:
        payload = signing.Signer(salt=salt).unsign_object(token)
    except signing.BadSignature:
        raise SubscriptionTokenError("tampered") from None
    except Exception:  # authentic, but not ours: bad base64, zlib or JSON
        raise SubscriptionTokenError("malformed") from None
    subscription = _subscription(payload)
    if subscription is None:
        raise SubscriptionTokenError("malformed")
    if payload["e"] <= _now():
        raise SubscriptionTokenError("expired")
    return subscription


def _user_id(user: object) -> str | None:
    if user is None:
        return None
    if isinstance(user, bool) or not isinstance(user, (int, str)):
        pk = getattr(user, "pk", None)
        if pk is None:
            raise ValueError(f"user must be a saved user or a primary key, not {user!r}.")
        user = pk
    user_id = str(user)
    if not user_id:
        raise ValueError("user must not be an empty str.")
    return user_id


def _subscription(payload: object) -> SignedSubscription | None:
    """The SignedSubscription of a signed payload, or None if it is not one of ours."""
    if not isinstance(payload, dict):
        return None
    channels, expires, user_id = payload.get("c"), payload.get("e"), payload.get("u")
    if not isinstance(channels, list) or not channels:
        return None
    try:
        names = tuple(validate_channel(name) for name in channels)
    except ValueError:
        return None
    if isinstance(expires, bool) or not isinstance(expires, (int, float)) or not math.isfinite(expires):
        return None
    if user_id is not None and not isinstance(user_id, str):
        return None
    try:
        when = datetime.datetime.fromtimestamp(expires, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return SignedSubscription(channels=names, expires=when, user_id=user_id)
