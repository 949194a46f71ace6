"""Sphinx configuration for the django-sse documentation."""

import os
import sys
from pathlib import Path

# The repository root, so that ``django_sse`` and the test project import.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# autodoc imports the package, which reads Django settings: set Django up first.
# The admin settings: they install django.contrib.admin, which django_sse.admin needs to import.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings_admin")
import django  # noqa: E402

django.setup()

import django_sse  # noqa: E402

project = "django-sse"
author = "The django-sse authors"
copyright = "django-sse authors"
release = django_sse.__version__
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"

# Keep autodoc'd classes out of the table of contents: each page is one class.
toc_object_entries = False

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

html_theme = "alabaster"
html_title = f"django-sse {release}"
