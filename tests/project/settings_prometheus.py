"""The test project with django-prometheus installed: its /metrics serves django-sse's metrics too
(tests/test_metrics.py)."""

from .settings import *  # noqa: F403
from .settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django_prometheus"]
ROOT_URLCONF = "tests.project.urls_prometheus"
