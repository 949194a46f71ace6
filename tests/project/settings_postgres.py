"""The test project on a real PostgreSQL (tests/postgres_server.py): SSE_PG_PORT, SSE_PG_NAME and,
with SSE_PG_POOL=1, Django's psycopg connection pool."""

import os

from .settings import *  # noqa: F403
from .settings import DATABASES

DATABASES = {
    **DATABASES,
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": os.environ.get("SSE_PG_PORT", "5432"),
        "NAME": os.environ.get("SSE_PG_NAME", "django_sse"),
        "USER": "postgres",
    },
}
if os.environ.get("SSE_PG_POOL") == "1":
    DATABASES["default"]["OPTIONS"] = {"pool": {"min_size": 0, "max_size": 4, "timeout": 10}}
