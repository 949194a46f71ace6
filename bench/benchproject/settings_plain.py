"""Baseline settings without django-sse: no EventStreamMiddleware, and no GZipMiddleware either
(Django 5.2 would gzip each chunk as a separate gzip member), so plain Django at its best.
django-sse is not installed, so its URLconf has the plain streams only (``django_sse.views``
imports the history models, which need the app)."""

from .settings import *  # noqa: F403

INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "benchproject.urls_plain"
