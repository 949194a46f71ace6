"""The test project with Django's admin installed, as `startproject` sets it up (tests/test_admin.py)."""

from .settings import *  # noqa: F403
from .settings import INSTALLED_APPS, STARTPROJECT_MIDDLEWARE

INSTALLED_APPS = ["django.contrib.admin", *INSTALLED_APPS]
MIDDLEWARE = STARTPROJECT_MIDDLEWARE
ROOT_URLCONF = "tests.project.urls_admin"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
