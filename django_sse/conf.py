"""The ``DJANGO_SSE`` setting: read, validated and defaulted in this one place."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

__all__ = ["DEFAULTS", "SETTING_NAME", "SSESettings", "get_settings", "setting_errors"]

SETTING_NAME = "DJANGO_SSE"


def _positive_number_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0)


def _non_negative_int_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _positive_int_or_none(value: Any) -> bool:
    return value is None or _positive_int(value)


def _positive_number(value: Any) -> bool:
    return value is not None and _positive_number_or_none(value)


def _dotted_path(value: Any) -> bool:
    return isinstance(value, str) and "." in value


#: key -> (default, validator, what a valid value is)
_SCHEMA: dict[str, tuple[Any, Callable[[Any], bool], str]] = {
    "HEARTBEAT": (15.0, _positive_number_or_none, "a positive number of seconds, or None to disable"),
    "RETRY": (3000, _non_negative_int_or_none, "a non-negative int (milliseconds), or None to send none"),
    "BACKEND": (
        "django_sse.backends.embedded.EmbeddedBackend",
        _dotted_path,
        "a dotted path to a backend class",
    ),
    "HISTORY": (True, lambda v: isinstance(v, bool), "True or False"),
    "HISTORY_MAX_EVENTS": (10_000, _positive_int_or_none, "a positive int, or None for no limit"),
    "HISTORY_MAX_AGE": (
        86_400,
        _positive_number_or_none,
        "a positive number of seconds, or None for no limit",
    ),
    "MAX_CHANNELS": (20, _positive_int, "a positive int"),
    "CLIENT_BUFFER": (1000, _positive_int, "a positive int (events)"),
    "CLIENT_BUFFER_BYTES": (1_048_576, _positive_int, "a positive int (bytes)"),
    "POLL_INTERVAL": (1.0, _positive_number, "a positive number of seconds"),
    "CHANNEL_LAYER": ("default", lambda v: isinstance(v, str) and bool(v), "a CHANNEL_LAYERS alias"),
    "PING_INTERVAL": (5.0, _positive_number, "a positive number of seconds"),
    "MAX_STREAMS": (10_000, _positive_int, "a positive int (open streams per process)"),
    "MAX_SYNC_STREAMS": (100, _positive_int, "a positive int (sync streams running at once per process)"),
    "WORKER_THREADS": (4, _positive_int, "a positive int (threads per process)"),
    "DIAGNOSTICS_TOKEN": (
        None,
        lambda v: v is None or (isinstance(v, str) and bool(v)),
        "a non-empty str, or None",
    ),
}

DEFAULTS: Mapping[str, Any] = {key: spec[0] for key, spec in _SCHEMA.items()}


@dataclass(frozen=True)
class SSESettings:
    """The effective ``DJANGO_SSE`` settings."""

    heartbeat: float | None
    retry: int | None
    backend: str
    history: bool
    history_max_events: int | None
    history_max_age: float | None
    max_channels: int
    client_buffer: int
    client_buffer_bytes: int
    poll_interval: float
    channel_layer: str
    ping_interval: float
    max_streams: int
    max_sync_streams: int
    worker_threads: int
    diagnostics_token: str | None


def setting_errors(raw: object) -> list[tuple[str, str]]:
    """Every problem with a ``DJANGO_SSE`` value as ``(check id, message)``; empty if valid."""
    if not isinstance(raw, Mapping):
        return [("django_sse.E001", f"{SETTING_NAME} must be a dict, got {type(raw).__name__}.")]
    errors = []
    valid = ", ".join(sorted(_SCHEMA))
    for key, value in raw.items():
        if key not in _SCHEMA:
            message = f"{SETTING_NAME} has an unknown key {key!r}; valid keys are: {valid}."
            errors.append(("django_sse.E002", message))
        elif not _SCHEMA[key][1](value):
            message = f"{SETTING_NAME}[{key!r}] must be {_SCHEMA[key][2]}, got {value!r}."
            errors.append(("django_sse.E003", message))
    return errors


@lru_cache(maxsize=1)
def get_settings() -> SSESettings:
    """Return the validated settings; raise ``ImproperlyConfigured`` if they are invalid."""
    raw = getattr(settings, SETTING_NAME, {})
    errors = setting_errors(raw)
    if errors:
        raise ImproperlyConfigured(" ".join(message for _, message in errors))
    values = {**DEFAULTS, **raw}
    return SSESettings(**{key.lower(): value for key, value in values.items()})


@receiver(setting_changed)
def _clear_cache(*, setting: str, **kwargs: Any) -> None:
    # The backend, made with the old settings, is reset by its own receiver (backends/__init__.py).
    if setting == SETTING_NAME:
        get_settings.cache_clear()
