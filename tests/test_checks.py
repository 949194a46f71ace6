from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_sse.checks import check_backend, check_middleware, check_settings
from django_sse.conf import DEFAULTS

GZIP = "django.middleware.gzip.GZipMiddleware"
OURS = "django_sse.middleware.EventStreamMiddleware"
COMMON = "django.middleware.common.CommonMiddleware"


def ids(messages):
    return [m.id for m in messages]


@pytest.fixture(autouse=True)
def open_files(monkeypatch):
    """The soft limit on open files the checks see: plenty, unless a test says otherwise."""
    import resource

    limit = [65536]
    monkeypatch.setattr(resource, "getrlimit", lambda which: (limit[0], resource.RLIM_INFINITY))
    return limit


@pytest.mark.parametrize(("soft", "max_streams", "expected"), [(1024, 10_000, ["django_sse.W004"]),
    (1024, 1000, []), (20_000, 10_000, [])])  # fmt: skip
def test_a_file_limit_below_max_streams_is_reported(settings, open_files, soft, max_streams, expected):
    open_files[0] = soft
    settings.DJANGO_SSE = {"MAX_STREAMS": max_streams}
    messages = check_settings()
    assert ids(messages) == expected
    if expected:
        assert f"may open only {soft} files" in messages[0].msg


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({}, []),
        ({"HEARTBEAT": 10, "RETRY": 0}, []),
        ([("HEARTBEAT", 1)], ["django_sse.E001"]),
        ({"HEARTBEET": 1}, ["django_sse.E002"]),
        ({"HEARTBEAT": "15"}, ["django_sse.E003"]),
        ({"HEARTBEAT": 0}, ["django_sse.E003"]),
        ({"HEARTBEAT": True}, ["django_sse.E003"]),
        ({"RETRY": -5}, ["django_sse.E003"]),
        ({"RETRY": 2.5}, ["django_sse.E003"]),
        ({"HEARTBEAT": 120}, ["django_sse.W002"]),
        ({"HEARTBEAT": None}, ["django_sse.W002"]),
        ({"X": 1, "RETRY": "a"}, ["django_sse.E002", "django_sse.E003"]),
    ],
)
def test_setting_checks(settings, value, expected):
    settings.DJANGO_SSE = value
    assert ids(check_settings()) == expected


def test_unknown_key_message_names_the_key_and_the_valid_ones(settings):
    settings.DJANGO_SSE = {"RETRIES": 3}
    [error] = check_settings()
    assert "'RETRIES'" in error.msg
    assert "valid keys are: " + ", ".join(sorted(DEFAULTS)) in error.msg


@pytest.mark.parametrize(
    ("middleware", "expected"),
    [
        ([GZIP, COMMON, OURS], []),
        ([OURS], []),
        ([OURS, GZIP], ["django_sse.E004"]),
        ([COMMON, OURS, COMMON, GZIP], ["django_sse.E004"]),
        ([GZIP, COMMON], ["django_sse.E005"]),
        ([COMMON], ["django_sse.W001"]),
    ],
)
def test_middleware_checks(settings, middleware, expected):
    settings.MIDDLEWARE = middleware
    assert ids(check_middleware()) == expected


def test_manage_py_check_fails_on_errors(settings):
    settings.MIDDLEWARE = [OURS, GZIP]
    with pytest.raises(SystemCheckError, match=r"(?s)django_sse\.E004.*HINT: Move"):
        call_command("check")


def test_the_test_project_passes(settings):
    call_command("check")


LAYER_BACKEND = "django_sse.backends.channel_layer.ChannelLayerBackend"
PUBSUB = {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": ["redis://x"]}}


@pytest.mark.parametrize(
    ("sse", "layers", "expected"),
    [
        ({}, {}, []),
        ({"BACKEND": LAYER_BACKEND}, {"default": PUBSUB}, []),
        ({"BACKEND": LAYER_BACKEND}, {}, ["django_sse.E006"]),
        ({"BACKEND": LAYER_BACKEND, "CHANNEL_LAYER": "sse"}, {"default": PUBSUB}, ["django_sse.E006"]),
        (
            {"BACKEND": LAYER_BACKEND},
            {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
            ["django_sse.E007"],
        ),
        ({"BACKEND": LAYER_BACKEND, "HISTORY": False}, {"default": PUBSUB}, ["django_sse.E008"]),
        (
            {"BACKEND": LAYER_BACKEND},
            {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}},
            ["django_sse.W003"],
        ),
        ({"BACKEND": "no.such.Backend"}, {}, ["django_sse.E009"]),
        ({"BACKEND": "django_sse.event.Event"}, {}, ["django_sse.E009"]),
    ],
)
def test_backend_checks(settings, sse, layers, expected):
    settings.DJANGO_SSE = sse
    settings.CHANNEL_LAYERS = layers
    assert ids(check_backend()) == expected


def backend_messages(settings, monkeypatch, vendor: str, psycopg3: bool, sse: dict) -> list:
    """The backend checks' messages with the default database's vendor and psycopg 3 faked."""
    from django.db import connections

    from django_sse.backends import wakeup

    settings.DJANGO_SSE = sse
    monkeypatch.setattr(connections["default"], "vendor", vendor)
    monkeypatch.setattr(wakeup, "_psycopg3", lambda: psycopg3)
    return check_backend()


@pytest.mark.parametrize(
    ("vendor", "psycopg3", "sse", "expected"),
    [
        ("postgresql", False, {}, ["django_sse.W005"]),
        ("postgresql", True, {}, []),
        ("sqlite", False, {}, []),
        ("postgresql", False, {"HISTORY": False}, []),  # no other process to wake
    ],
)
def test_postgres_without_psycopg3_is_reported(settings, monkeypatch, vendor, psycopg3, sse, expected):
    messages = backend_messages(settings, monkeypatch, vendor, psycopg3, sse)
    assert ids(messages) == expected
    if expected:
        assert "psycopg 3" in messages[0].msg and "POLL_INTERVAL" in messages[0].msg


PG_BACKEND = "django_sse.backends.postgres.PostgresBackend"


@pytest.mark.parametrize(
    ("vendor", "psycopg3", "sse", "expected"),
    [
        ("postgresql", True, {"BACKEND": PG_BACKEND}, []),
        ("sqlite", True, {"BACKEND": PG_BACKEND}, ["django_sse.E010"]),
        ("postgresql", False, {"BACKEND": PG_BACKEND}, ["django_sse.E011"]),
        ("postgresql", True, {"BACKEND": PG_BACKEND, "HISTORY": False}, ["django_sse.E008"]),
    ],
)
def test_postgres_backend_checks(settings, monkeypatch, vendor, psycopg3, sse, expected):
    messages = backend_messages(settings, monkeypatch, vendor, psycopg3, sse)
    assert ids(messages) == expected
    if "django_sse.E010" in expected:
        assert "'default' is sqlite" in messages[0].msg
