"""django_sse.models: a clear error when the app is not installed."""

from __future__ import annotations

import subprocess
import sys

from tests.servers import ROOT

WITHOUT_THE_APP = """
import django
from django.conf import settings

settings.configure(INSTALLED_APPS=["django.contrib.contenttypes"], DATABASES={})
django.setup()
from django_sse import publish
"""


def test_a_project_without_the_app_gets_improperly_configured_naming_the_fix() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_APP], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured:"), result.stderr
    assert '"django_sse"' in last and "INSTALLED_APPS" in last
