"""Counts every database query of the process (bench/workers.py reads it through ``stats``)."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.backends.signals import connection_created


class WorkersConfig(AppConfig):
    name = "benchproject"
    label = "benchproject_workers"

    def ready(self) -> None:
        from . import workers_views

        def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            workers_views.QUERIES[0] += 1
            return execute(sql, params, many, context)

        def install(sender: Any, connection: Any, **kwargs: Any) -> None:
            if count not in connection.execute_wrappers:
                connection.execute_wrappers.append(count)

        connection_created.connect(install, weak=False)
