"""Fan-out bench settings (bench/fanout.py): django-sse with its history in a SQLite file.

Both rows of the fan-out table run on these settings, each in a server of its own, so that the
only difference between them is the view. No GZip (Django 5.2 would gzip each chunk of an async
stream) and no EventStreamMiddleware (``Feed`` answers with an ``EventStreamResponse`` already).
The database file is named by ``BENCH_FANOUT_DB``; bench/fanout.py migrates a fresh one per run.
"""

import json
import os
import tempfile
from pathlib import Path
from typing import Any

SECRET_KEY = "bench-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "benchproject.fanout_urls"
USE_TZ = True
INSTALLED_APPS = ["django_sse"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
#: One writer and many readers in several threads (bench/streams.py's settings use them too).
SQLITE_OPTIONS = {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE", "timeout": 20}
_DB = os.environ.get("BENCH_FANOUT_DB", str(Path(tempfile.gettempdir()) / "bench-fanout.sqlite3"))
DATABASES: dict[str, dict[str, Any]] = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _DB,
        "OPTIONS": SQLITE_OPTIONS,
    }
}
# W001 is about the baseline's hand-built stream, which must stay plain Django: no EventStreamMiddleware.
SILENCED_SYSTEM_CHECKS = ["django_sse.W001"]
# The defaults (CLIENT_BUFFER 1000, HEARTBEAT 15 s, history on) unless fanout.py --django-sse says otherwise.
DJANGO_SSE: dict[str, Any] = json.loads(os.environ.get("BENCH_FANOUT_DJANGO_SSE") or "{}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
