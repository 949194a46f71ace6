from __future__ import annotations

import re

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_sse.conf import DEFAULTS, get_settings


def test_defaults(settings):
    del settings.DJANGO_SSE
    assert get_settings().heartbeat == DEFAULTS["HEARTBEAT"] == 15.0
    assert get_settings().retry == DEFAULTS["RETRY"] == 3000


def test_override_is_seen_at_once(settings):
    settings.DJANGO_SSE = {"HEARTBEAT": 2.5, "RETRY": None}
    assert (get_settings().heartbeat, get_settings().retry) == (2.5, None)


def test_invalid_settings_raise_naming_the_key(settings):
    settings.DJANGO_SSE = {"HEARTBEET": 5}
    expected = "unknown key 'HEARTBEET'; valid keys are: " + ", ".join(sorted(DEFAULTS))
    with pytest.raises(ImproperlyConfigured, match=re.escape(expected)):
        get_settings()
