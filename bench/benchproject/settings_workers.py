"""Workers bench settings (bench/workers.py): one channel stream behind ``uvicorn --workers N``.

The fan-out bench's settings, with the database and backend from the environment:

- ``BENCH_WORKERS_DB``: a SQLite file (WAL, IMMEDIATE transactions, timeout 20), or, with
  ``BENCH_WORKERS_PG_PORT`` set, the PostgreSQL database of that name on 127.0.0.1;
- ``BENCH_REDIS_URL``: with it, ``ChannelLayerBackend`` on a ``channels_redis`` pub/sub layer there;
- ``BENCH_BACKEND=postgres``: ``PostgresBackend`` (with ``BENCH_WORKERS_PG_PORT``);
  with neither, the embedded default.

Every database connection counts its queries (``workers_views.QUERIES``), so that the bench can
print how often an idle worker queries the database.
"""

import os

from .settings_fanout import *  # noqa: F403
from .settings_fanout import SQLITE_OPTIONS

ROOT_URLCONF = "benchproject.workers_urls"
INSTALLED_APPS = ["django_sse", "benchproject.workers_app.WorkersConfig"]
_NAME = os.environ.get("BENCH_WORKERS_DB", "bench-workers")
DATABASES = {
    "default": (
        {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _NAME,
            "HOST": "127.0.0.1",
            "PORT": os.environ["BENCH_WORKERS_PG_PORT"],
            "USER": os.environ.get("BENCH_WORKERS_PG_USER", "postgres"),
        }
        if os.environ.get("BENCH_WORKERS_PG_PORT")
        else {"ENGINE": "django.db.backends.sqlite3", "NAME": _NAME, "OPTIONS": SQLITE_OPTIONS}
    )
}
DJANGO_SSE = {}
if os.environ.get("BENCH_REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [os.environ["BENCH_REDIS_URL"]]},
        }
    }
    DJANGO_SSE["BACKEND"] = "django_sse.backends.channel_layer.ChannelLayerBackend"
if os.environ.get("BENCH_BACKEND") == "postgres":
    DJANGO_SSE["BACKEND"] = "django_sse.backends.postgres.PostgresBackend"
