"""Bench settings with django-sse: GZipMiddleware on, EventStreamMiddleware below it."""

SECRET_KEY = "bench-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "benchproject.urls"
USE_TZ = True
INSTALLED_APPS = ["django_sse"]
MIDDLEWARE = [
    "django.middleware.gzip.GZipMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django_sse.middleware.EventStreamMiddleware",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DJANGO_SSE = {"HEARTBEAT": 15}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
