"""Fan-out backends: the embedded default, or one that spans processes and machines."""

from __future__ import annotations

import threading
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from ..conf import SETTING_NAME, get_settings
from .base import BaseBackend

__all__ = ["BaseBackend", "close_backend", "get_backend", "open_subscriptions", "reset_backend"]

_lock = threading.Lock()
_backend: BaseBackend | None = None


def get_backend() -> BaseBackend:
    """This process's backend, as configured by ``DJANGO_SSE['BACKEND']``."""
    global _backend
    with _lock:
        if _backend is None:
            conf = get_settings()
            _backend = import_string(conf.backend)(conf)
        return _backend


def close_backend(reason: str) -> None:
    """End the streams of the backend, if one was started."""
    with _lock:
        backend = _backend
    if backend is not None:
        backend.close(reason)


def open_subscriptions() -> int:
    """How many streams of this process are subscribed to channels."""
    with _lock:
        backend = _backend
    return 0 if backend is None else len(backend.hub)


@receiver(setting_changed)
def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        reset_backend()  # the next get_backend() makes one with the new settings


def reset_backend() -> None:
    """Forget the backend (after a settings change in tests)."""
    global _backend
    with _lock:
        if _backend is not None:
            _backend.close("backend reset")
            _backend.stop()
        _backend = None
