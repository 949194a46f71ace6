"""The test project with the recipes of docs/recipes.rst (tests/test_recipes.py).

The ``startproject`` middleware (sessions, CSRF, authentication), as the recipes would run in a
project, and ``STATIC_URL`` for the page that loads htmx.
"""

from .settings import *  # noqa: F403
from .settings import STARTPROJECT_MIDDLEWARE

MIDDLEWARE = STARTPROJECT_MIDDLEWARE
ROOT_URLCONF = "tests.project.urls_recipes"
STATIC_URL = "/static/"
