"""The test project with the Redis backend: a pub/sub channel layer at SSE_TEST_REDIS_URL."""

import os

from .settings import *  # noqa: F403
from .settings import DJANGO_SSE, MIDDLEWARE

MIDDLEWARE = ["tests.project.server_pid.server_pid_middleware", *MIDDLEWARE]
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [os.environ.get("SSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")]},
    }
}
DJANGO_SSE = {
    **DJANGO_SSE,
    "BACKEND": "django_sse.backends.channel_layer.ChannelLayerBackend",
    "PING_INTERVAL": float(os.environ.get("SSE_TEST_PING_INTERVAL", "0.5")),
}
