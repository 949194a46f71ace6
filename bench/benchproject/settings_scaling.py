"""Scaling bench settings (bench/scaling.py): the Redis backend, history in a SQLite file.

The fan-out bench's settings (no GZip, no EventStreamMiddleware, SQLite in WAL mode with IMMEDIATE
transactions and a 20 s timeout), plus a ``channels_redis`` pub/sub layer at ``BENCH_REDIS_URL`` and
``ChannelLayerBackend``. The database file is named by ``BENCH_SCALING_DB``; bench/scaling.py starts
its own redis-server and migrates a fresh database file per run. ``BENCH_SCALING_DJANGO_SSE`` (JSON)
adds to the ``DJANGO_SSE`` setting.
"""

import json
import os
import tempfile
from pathlib import Path

from .settings_fanout import *  # noqa: F403
from .settings_fanout import DATABASES

ROOT_URLCONF = "benchproject.scaling_urls"
DATABASES["default"]["NAME"] = os.environ.get(
    "BENCH_SCALING_DB", str(Path(tempfile.gettempdir()) / "bench-scaling.sqlite3")
)
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")]},
    }
}
DJANGO_SSE = {
    "BACKEND": "django_sse.backends.channel_layer.ChannelLayerBackend",
    **json.loads(os.environ.get("BENCH_SCALING_DJANGO_SSE") or "{}"),
}
