"""Channel names: what a valid one looks like, checked in one place."""

from __future__ import annotations

import re

__all__ = ["MAX_LENGTH", "validate_channel"]

#: Longest channel name. Short enough to become a Channels group name with a prefix.
MAX_LENGTH = 80

_VALID = re.compile(r"[A-Za-z0-9_.\-]+")


def validate_channel(name: object) -> str:
    """Return ``name`` if it is a valid channel name, else raise ``ValueError`` saying why.

    Valid: a ``str`` of 1 to 80 ASCII letters, digits, ``-``, ``_`` or ``.``.
    """
    if not isinstance(name, str):
        raise ValueError(f"A channel name must be a str, got {type(name).__name__}.")
    if not 1 <= len(name) <= MAX_LENGTH:
        raise ValueError(f"A channel name must be 1 to {MAX_LENGTH} characters long, got {len(name)}.")
    if not _VALID.fullmatch(name):
        raise ValueError(f"Invalid channel name {name!r}: use only ASCII letters, digits, '-', '_' and '.'.")
    return name
