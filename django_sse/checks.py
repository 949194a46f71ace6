"""System checks for the configurations that silently hold events back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from .conf import SETTING_NAME, get_settings, setting_errors

MIDDLEWARE_PATH = "django_sse.middleware.EventStreamMiddleware"

#: Middleware known to compress responses (and so to hold events back).
COMPRESSION_MIDDLEWARE = frozenset(
    {
        "django.middleware.gzip.GZipMiddleware",
        "compression_middleware.middleware.CompressionMiddleware",
        "django_brotli.middleware.BrotliMiddleware",
    }
)

#: Above this many seconds between heartbeats, common proxy read timeouts (60 s) cut idle streams.
MAX_SAFE_HEARTBEAT = 55


@register(Tags.compatibility)
def check_settings(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """E001-E003: ``DJANGO_SSE`` is a dict of known keys with valid values; W002: heartbeat;
    W004: the file limit."""
    raw = getattr(settings, SETTING_NAME, {})
    messages: list[CheckMessage] = [
        Error(message, hint="See the django-sse settings documentation.", id=code)
        for code, message in setting_errors(raw)
    ]
    if messages:
        return messages
    heartbeat = get_settings().heartbeat
    if heartbeat is None or heartbeat > MAX_SAFE_HEARTBEAT:
        messages.append(
            Warning(
                f"{SETTING_NAME}['HEARTBEAT'] is {heartbeat!r}: proxies such as nginx close a stream "
                "after 60 s without data, and WSGI servers notice a client has gone only when a write fails.",
                hint=f"Use a heartbeat of at most {MAX_SAFE_HEARTBEAT} seconds (the default is 15).",
                id="django_sse.W002",
            )
        )
    messages += _check_open_files(get_settings().max_streams)
    return messages


def _check_open_files(max_streams: int) -> list[CheckMessage]:
    """W004: the process may open fewer files than MAX_STREAMS streams need (a socket each)."""
    try:
        import resource
    except ImportError:  # not on this platform (Windows)
        return []
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft > max_streams:
        return []
    return [
        Warning(
            f"{SETTING_NAME}['MAX_STREAMS'] is {max_streams}, but this process may open only {soft} files: "
            'each open stream holds a socket, so connections fail ("Too many open files") before the '
            "limit answers 503.",
            hint=f"Raise the server's file limit above MAX_STREAMS (ulimit -n, or LimitNOFILE= in systemd), "
            f"or lower MAX_STREAMS below {soft}.",
            id="django_sse.W004",
        )
    ]


@register(Tags.compatibility)
def check_middleware(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """E004, E005, W001: ``EventStreamMiddleware`` is installed, below any compression middleware."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    compressors = [(i, path) for i, path in enumerate(middleware) if path in COMPRESSION_MIDDLEWARE]
    if MIDDLEWARE_PATH not in middleware:
        if compressors:
            return [
                Error(
                    f"{compressors[0][1]} compresses text/event-stream responses, which holds events back, "
                    f"and {MIDDLEWARE_PATH} is not in MIDDLEWARE to prevent it.",
                    hint=f"Add {MIDDLEWARE_PATH!r} to MIDDLEWARE, below {compressors[0][1]!r}.",
                    id="django_sse.E005",
                )
            ]
        return [
            Warning(
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE: a hand-built StreamingHttpResponse of a sync "
                "iterator with content type text/event-stream is collected into a list under ASGI, and an "
                "async one into a list under WSGI, so neither streams per event.",
                hint=f"Add {MIDDLEWARE_PATH!r} to MIDDLEWARE.",
                id="django_sse.W001",
            )
        ]
    ours = middleware.index(MIDDLEWARE_PATH)
    return [
        Error(
            f"{path} comes after {MIDDLEWARE_PATH} in MIDDLEWARE, so it compresses event streams "
            "before the middleware can stop it, which holds events back.",
            hint=f"Move {MIDDLEWARE_PATH!r} below {path!r} (later in the list).",
            id="django_sse.E004",
        )
        for i, path in compressors
        if i > ours
    ]


@register(Tags.compatibility)
def check_backend(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """E006-E011, W003, W005: the backend can be loaded, a channel layer backend has a usable layer,
    the PostgreSQL backend has PostgreSQL through psycopg 3, and the embedded one can wake the
    other processes."""
    if setting_errors(getattr(settings, SETTING_NAME, {})):
        return []  # reported by check_settings
    conf = get_settings()
    try:
        backend = import_string(conf.backend)
    except ImportError as exc:
        return [Error(f"{SETTING_NAME}['BACKEND'] cannot be imported: {exc}.", id="django_sse.E009")]
    from .backends.base import BaseBackend
    from .backends.channel_layer import ChannelLayerBackend
    from .backends.postgres import PostgresBackend

    if not (isinstance(backend, type) and issubclass(backend, BaseBackend)):
        return [
            Error(f"{SETTING_NAME}['BACKEND'] {conf.backend!r} is not a BaseBackend.", id="django_sse.E009")
        ]
    messages: list[CheckMessage] = []
    if backend.needs_history and not conf.history:
        messages.append(
            Error(
                f"{conf.backend} needs history: events are stored so that any process can read them.",
                hint=f"Remove {SETTING_NAME}['HISTORY'] = False.",
                id="django_sse.E008",
            )
        )
    if not issubclass(backend, (ChannelLayerBackend, PostgresBackend)):
        return messages + _check_wakeup(conf.history)
    if issubclass(backend, PostgresBackend):
        return messages + _check_postgres(conf.backend)
    layer = (getattr(settings, "CHANNEL_LAYERS", None) or {}).get(conf.channel_layer)
    if layer is None:
        messages.append(
            Error(
                f"CHANNEL_LAYERS has no {conf.channel_layer!r} layer for {SETTING_NAME}['CHANNEL_LAYER'].",
                hint="Configure a channels_redis layer there, or name another with CHANNEL_LAYER.",
                id="django_sse.E006",
            )
        )
    elif (problem := _LAYER_PROBLEMS.get(layer.get("BACKEND"))) is not None:
        level, message, hint, check_id = problem
        messages.append(level(message, hint=hint, id=check_id))
    return messages


#: Channel layers that work, but not for django-sse: the check each gets.
_LAYER_PROBLEMS: dict[str, tuple[type[Error] | type[Warning], str, str, str]] = {
    "channels.layers.InMemoryChannelLayer": (
        Error,
        "The InMemoryChannelLayer reaches only its own process, so other processes never hear of "
        "events published here.",
        "Use channels_redis.pubsub.RedisPubSubChannelLayer, or the embedded default backend.",
        "django_sse.E007",
    ),
    "channels_redis.core.RedisChannelLayer": (
        Warning,
        "channels_redis.core.RedisChannelLayer queues a copy of every message per process and "
        "drops messages past its capacity; nothing is lost (history catches up) but events are late.",
        "Use channels_redis.pubsub.RedisPubSubChannelLayer for django-sse.",
        "django_sse.W003",
    ),
}


def _check_postgres(path: str) -> list[CheckMessage]:
    """E010, E011: the PostgreSQL backend has PostgreSQL, through psycopg 3, for history."""
    from django.db import connections, router

    from .backends.wakeup import polling_only
    from .models import StoredEvent

    alias = router.db_for_write(StoredEvent)
    vendor = connections[alias].vendor
    if vendor != "postgresql":
        return [
            Error(
                f"{path} announces events through PostgreSQL's LISTEN/NOTIFY, but the history database "
                f"{alias!r} is {vendor}.",
                hint="Store history in PostgreSQL (DATABASES, or a router for django_sse), or use the "
                "embedded default or the channel layer backend.",
                id="django_sse.E010",
            )
        ]
    if polling_only(alias):
        return [
            Error(
                f"{path} listens through psycopg 3's async connection, and Django uses psycopg 2 here.",
                hint="Install psycopg 3 (pip install 'psycopg[binary]'); Django prefers it to psycopg 2.",
                id="django_sse.E011",
            )
        ]
    return []


def _check_wakeup(history: bool) -> list[CheckMessage]:
    from django.db import router

    from .backends.wakeup import polling_only
    from .models import StoredEvent

    reason = polling_only(router.db_for_write(StoredEvent)) if history else ""
    if not reason:
        return []
    return [
        Warning(
            f"Server processes find events published by other processes only at their next poll, up to "
            f"{SETTING_NAME}['POLL_INTERVAL'] late: {reason}.",
            hint="Install psycopg 3 (pip install 'psycopg[binary]'); Django uses it when both are installed.",
            id="django_sse.W005",
        )
    ]
