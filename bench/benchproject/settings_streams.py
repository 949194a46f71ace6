"""Streams bench settings (bench/streams.py), django-sse rows: the stack ``startproject`` writes.

``django-admin startproject``'s middleware, with ``GZipMiddleware`` first (as sites that compress add
it) and ``EventStreamMiddleware`` last (below it, as ``manage.py check`` asks); contenttypes, auth,
sessions, messages and django_sse installed; history in a SQLite file named by ``BENCH_STREAMS_DB``
(WAL, IMMEDIATE transactions, timeout 20: the fan-out bench's options), which bench/streams.py
migrates fresh for every django-sse server. ``DJANGO_SSE`` at its defaults.
"""

import os
import tempfile
from pathlib import Path
from typing import Any

from .settings_fanout import SQLITE_OPTIONS

SECRET_KEY = "bench-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "benchproject.streams_urls"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_sse",
]
#: What ``startproject`` writes, in its order.
STARTPROJECT_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
MIDDLEWARE = [
    "django.middleware.gzip.GZipMiddleware",
    *STARTPROJECT_MIDDLEWARE,
    "django_sse.middleware.EventStreamMiddleware",
]
_DB = os.environ.get("BENCH_STREAMS_DB", str(Path(tempfile.gettempdir()) / "bench-streams.sqlite3"))
DATABASES: dict[str, dict[str, Any]] = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _DB,
        "OPTIONS": SQLITE_OPTIONS,
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
# The defaults, but for MAX_STREAMS: bench/streams.py sets it above the streams it opens, so that the
# limit (10 000 per process by default) refuses none of them.
DJANGO_SSE: dict[str, Any] = {"MAX_STREAMS": int(os.environ.get("BENCH_STREAMS_MAX_STREAMS", "10000"))}
