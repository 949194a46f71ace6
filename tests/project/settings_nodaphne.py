"""The test project without daphne in ``INSTALLED_APPS``: ``manage.py runserver`` is Django's WSGI server."""

from .settings import *  # noqa: F403
from .settings import INSTALLED_APPS

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "daphne"]
