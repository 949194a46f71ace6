"""Soak bench settings (bench/soak.py): the streams bench's ``startproject`` stack and SQLite history.

``CLIENT_BUFFER_BYTES`` comes from ``BENCH_SOAK_BUFFER_BYTES`` (bench/soak.py lowers it so that its
non-reading clients are cut within seconds, not minutes); the database file is named by
``BENCH_STREAMS_DB`` as in ``settings_streams``.
"""

import os

from .settings_streams import *  # noqa: F403

ROOT_URLCONF = "benchproject.soak_urls"
DJANGO_SSE = {
    "MAX_STREAMS": 10000,
    "CLIENT_BUFFER_BYTES": int(os.environ.get("BENCH_SOAK_BUFFER_BYTES", str(1024 * 1024))),
}
