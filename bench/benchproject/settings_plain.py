"""Baseline settings without django-sse: no EventStreamMiddleware, and no GZipMiddleware either
(Django 5.2 would gzip each chunk as a separate gzip member), so plain Django at its best."""

from .settings import *  # noqa: F403

INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
