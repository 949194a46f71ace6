"""The test project without ``EventStreamMiddleware`` (GZip still on): the traps it avoids, for real."""

from .settings import *  # noqa: F403
from .settings import MIDDLEWARE

MIDDLEWARE = [m for m in MIDDLEWARE if m != "django_sse.middleware.EventStreamMiddleware"]
SILENCED_SYSTEM_CHECKS = ["django_sse.E005"]
