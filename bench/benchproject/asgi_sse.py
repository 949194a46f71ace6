"""The bench project behind django-sse's optional ASGI entry point (``django_sse.asgi``)."""

import os

from django_sse.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")
application = get_asgi_application()
