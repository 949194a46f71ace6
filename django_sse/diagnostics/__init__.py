"""Is this deployment buffering? The diagnostic stream, and what ``manage.py sse_check`` makes of it.

* :mod:`.view`: the diagnostic stream (:class:`DiagnosticStreamView`, served
  by ``django_sse.urls``): events on a known cadence, each with the server
  time it was sent.
* :mod:`.record`: the client side: an HTTP recording of what arrives, and
  when (:func:`record`, :func:`run`).
* :mod:`.judge`: pure judging of a recording (:func:`diagnose`): findings,
  each with a stable code.
"""

from __future__ import annotations

from .judge import (
    CODES,
    EXIT_FAILED,
    EXIT_NOT_CHECKED,
    EXIT_OK,
    FAIL,
    INFO,
    OK,
    WARN,
    Code,
    Finding,
    Level,
    Report,
    diagnose,
)
from .record import DEFAULT_DURATION, RECONNECT_WAIT, Arrival, Decoder, Recording, record, run
from .view import HELLO_EVENT, TOKEN_HEADER, Cadence, DiagnosticStreamView, diagnostics_token, parse_cadence

__all__ = [
    "CODES",
    "DEFAULT_DURATION",
    "EXIT_FAILED",
    "EXIT_NOT_CHECKED",
    "EXIT_OK",
    "FAIL",
    "HELLO_EVENT",
    "INFO",
    "OK",
    "RECONNECT_WAIT",
    "TOKEN_HEADER",
    "WARN",
    "Arrival",
    "Cadence",
    "Code",
    "Decoder",
    "DiagnosticStreamView",
    "Finding",
    "Level",
    "Recording",
    "Report",
    "diagnose",
    "diagnostics_token",
    "parse_cadence",
    "record",
    "run",
]
