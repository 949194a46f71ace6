"""The demo's pages and event streams: an async clock, a sync job, and a chat on a channel."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django import forms
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from django_sse import Event, EventStreamView, publish
from django_sse.models import StoredEvent

JOB_STEPS = 20
JOB_STEP_SECONDS = 0.5

CHAT_CHANNEL = "chat"
CHAT_SNAPSHOT_SIZE = 20


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/index.html", {"steps": JOB_STEPS, "step_seconds": JOB_STEP_SECONDS})


class ClockStream(EventStreamView):
    """An async generator: the server's time, once a second, until the browser leaves."""

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Event]:
        tick = 0
        while True:  # ends when the client disconnects: the generator is closed then
            now = timezone.localtime()
            yield Event(data={"time": now.strftime("%H:%M:%S"), "date": now.date().isoformat()}, id=str(tick))
            tick += 1
            await asyncio.sleep(1)


class JobStream(EventStreamView):
    """A plain sync generator that blocks: no flush, no async, no thread handling of its own."""

    def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Iterator[Event]:
        started = time.monotonic()
        yield Event(event="progress", data={"step": 0, "of": JOB_STEPS})
        for step in range(1, JOB_STEPS + 1):
            time.sleep(JOB_STEP_SECONDS)  # stands in for real, blocking work
            yield Event(event="progress", data={"step": step, "of": JOB_STEPS})
        yield Event(event="done", data={"seconds": round(time.monotonic() - started, 2)})


# ------------------------------------------------------------------- the chat


class ChatForm(forms.Form):
    name = forms.CharField(max_length=40)
    text = forms.CharField(max_length=500)


def chat(request: HttpRequest) -> HttpResponse:
    """The chat page; a POST publishes a message on the "chat" channel (with or without JavaScript)."""
    form = ChatForm(request.POST or None)
    if request.method == "POST":
        if not form.is_valid():
            if _wants_json(request):
                return JsonResponse({"errors": form.errors}, status=400)
        else:
            message = {"name": form.cleaned_data["name"], "text": form.cleaned_data["text"]}
            # Stored in the history first, then sent to every open stream of the channel, on every
            # process: a browser that reconnects later replays it from its Last-Event-ID.
            event = publish(CHAT_CHANNEL, message, event="message")
            if _wants_json(request):
                return JsonResponse({"id": event.id})
            return redirect("chat")
    return render(request, "demo/chat.html", {"form": form, "snapshot_size": CHAT_SNAPSHOT_SIZE})


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _message(row: StoredEvent) -> dict[str, Any]:
    """A stored chat event as the page shows it; ``sse_publish chat hello`` (no --json) sends plain text."""
    try:
        data = json.loads(row.data or "")
    except ValueError:
        data = row.data
    if not isinstance(data, dict):
        data = {"name": "?", "text": data}
    return {"id": row.id, "name": str(data.get("name", "?")), "text": str(data.get("text", ""))}


class ChatStream(EventStreamView):
    """The "chat" channel: live messages with Last-Event-ID replay, and a snapshot on a fresh start."""

    channels = [CHAT_CHANNEL]

    async def initial_events(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Event]:
        # A generator, so the query runs once the stream has subscribed to the channel: a message
        # published meanwhile is in the snapshot, or arrives live, or both (the page skips it by id).
        # Sent on a fresh connection and after a reset, never when a reconnecting client is resumed.
        # Unnamed events (`sse_publish chat hello`) reach the page's "message" listener too.
        rows = StoredEvent.objects.filter(Q(event="message") | Q(event=None), channel=CHAT_CHANNEL)
        newest = [_message(row) async for row in rows.order_by("-id")[:CHAT_SNAPSHOT_SIZE]]
        # No id: in a stream with channels, ids are the channel's positions.
        yield Event(event="snapshot", data={"messages": newest[::-1]})
