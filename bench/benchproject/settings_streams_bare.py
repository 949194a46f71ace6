"""Streams bench settings (bench/streams.py), ``plain bare`` rows: plain Django with no middleware."""

from .settings_streams_plain import *  # noqa: F403

MIDDLEWARE = []
