"""A read-only admin for history: the stored events, by channel and time, searchable in their data.

Loaded by ``django.contrib.admin``'s autodiscovery, so only in projects that install the admin.
Events cannot be added, changed or deleted here: history is what clients replay, and editing it
would hand reconnecting clients something no open stream ever saw (pruning is
``manage.py sse_prune``'s job).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import StoredEvent

__all__ = ["StoredEventAdmin"]

#: Characters of an event's data shown in the list.
PREVIEW_LENGTH = 80


@admin.register(StoredEvent)
class StoredEventAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Lists stored events newest first; staff with the *view* permission may read them."""

    list_display = ["id", "channel", "event", "preview", "created"]
    list_filter = ["created"]
    date_hierarchy = "created"
    search_fields = ["=channel", "data"]
    ordering = ["-id"]
    list_per_page = 50
    show_full_result_count = False  # no COUNT(*) over a large table on every page
    fields = ("id", "channel", "event", "data", "created")
    readonly_fields = fields

    @admin.display(description="data")
    def preview(self, obj: StoredEvent) -> str:
        data = obj.data or ""
        return data if len(data) <= PREVIEW_LENGTH else data[: PREVIEW_LENGTH - 1] + "…"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
