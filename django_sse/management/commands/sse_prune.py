"""``manage.py sse_prune``: apply the history retention settings now (e.g. from cron)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from django_sse.publishing import prune_history


class Command(BaseCommand):
    help = "Delete stored events beyond DJANGO_SSE['HISTORY_MAX_EVENTS'] or older than HISTORY_MAX_AGE."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"Deleted {prune_history()} stored events.")
