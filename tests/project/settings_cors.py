"""The test project with django-cors-headers: streams read from another origin (tests/test_browser_cors.py).

``SSE_TEST_CORS_ORIGINS``: the comma-separated origins allowed to read with credentials.
"""

import os

from .settings import *  # noqa: F403
from .settings import INSTALLED_APPS, STARTPROJECT_MIDDLEWARE

INSTALLED_APPS = [*INSTALLED_APPS, "corsheaders"]
# As high as possible: above anything that may answer by itself (CommonMiddleware, GZip).
MIDDLEWARE = ["corsheaders.middleware.CorsMiddleware", *STARTPROJECT_MIDDLEWARE]
ROOT_URLCONF = "tests.project.urls_cors"
CORS_ALLOWED_ORIGINS = [o for o in os.environ.get("SSE_TEST_CORS_ORIGINS", "").split(",") if o]
CORS_ALLOW_CREDENTIALS = True
