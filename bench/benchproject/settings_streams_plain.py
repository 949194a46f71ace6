"""Streams bench settings (bench/streams.py), ``plain + stack`` rows: plain Django, the same stack.

The middleware of ``settings_streams`` (``GZipMiddleware`` first, then ``startproject``'s) without
``EventStreamMiddleware``, and its apps without django_sse: the views are hand-built
``StreamingHttpResponse``s. GZip compresses them (each chunk of an async stream as a gzip member of
its own, Django 5.2), since the client asks for gzip as browsers do.
"""

from .settings_streams import *  # noqa: F403
from .settings_streams import INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "django_sse"]
MIDDLEWARE = [m for m in MIDDLEWARE if m != "django_sse.middleware.EventStreamMiddleware"]
ROOT_URLCONF = "benchproject.streams_urls_plain"
