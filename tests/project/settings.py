"""Settings of the project the server tests run: GZip on, daphne installed (so runserver is ASGI)."""

import json
import os
import tempfile

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "tests.project.urls"
USE_TZ = True
INSTALLED_APPS = [
    "daphne",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_sse",
    "tests.project",
]
MIDDLEWARE = [
    "django.middleware.gzip.GZipMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django_sse.middleware.EventStreamMiddleware",
]
#: What `django-admin startproject` writes, GZip above, ours below (SSE_TEST_MIDDLEWARE=startproject).
STARTPROJECT_MIDDLEWARE = [
    "django.middleware.gzip.GZipMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_sse.middleware.EventStreamMiddleware",
]
if os.environ.get("SSE_TEST_MIDDLEWARE") == "startproject":
    MIDDLEWARE = STARTPROJECT_MIDDLEWARE
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SSE_TEST_DB", ":memory:"),
        # pytest's test database as a file: streams read history on other threads while tests
        # publish, and an in-memory database (shared cache) makes them lock each other out.
        "TEST": {"NAME": os.path.join(tempfile.gettempdir(), f"django_sse_tests_{os.getpid()}.sqlite3")},
        # Publishers and streams in several processes share the file: WAL lets readers and one
        # writer work at once, IMMEDIATE takes the write lock up front, timeout waits for it.
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }
}
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.contrib.messages.context_processors.messages"]},
    }
]
ASGI_APPLICATION = "tests.project.asgi.application"
DJANGO_SSE: dict[str, object] = {
    "HEARTBEAT": 15,
    "POLL_INTERVAL": 0.2,
    "CLIENT_BUFFER": 100,
    "MAX_CHANNELS": 5,
    # A server test's own limits, e.g. {"MAX_STREAMS": 4}.
    **json.loads(os.environ.get("SSE_TEST_DJANGO_SSE", "{}")),
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
