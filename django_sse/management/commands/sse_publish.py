"""``manage.py sse_publish CHANNEL DATA``: publish from outside a request."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_sse.publishing import publish


class Command(BaseCommand):
    help = "Publish an event on a channel; open streams receive it, reconnecting clients replay it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("channel", help="the channel name")
        parser.add_argument("data", help="the event's data (text, or JSON with --json)")
        parser.add_argument("--event", help="the event type (default: message)")
        parser.add_argument("--json", action="store_true", help="parse DATA as JSON and send it as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        data: Any = options["data"]
        if options["json"]:
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise CommandError(f"DATA is not valid JSON: {exc}") from exc
        try:
            event = publish(options["channel"], data, event=options["event"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Published id {event.id} on {options['channel']}.")
