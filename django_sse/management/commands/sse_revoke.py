"""``manage.py sse_revoke``: end open streams of a channel, a user, a session or a key, in every process."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_sse.revocation import revoke, session_key, user_key


class Command(BaseCommand):
    help = (
        "End open streams (of a channel, with a key, or both) in every process; their clients "
        "reconnect and are checked again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--channel", help="end the streams of this channel")
        keys = parser.add_mutually_exclusive_group()
        keys.add_argument("--key", help="end the streams with this revocation key")
        keys.add_argument("--user", help="end the streams of the user with this username")
        keys.add_argument("--session", help="end the streams of this session key")

    def handle(self, *args: Any, **options: Any) -> None:
        key = options["key"]
        if options["user"] is not None:
            from django.contrib.auth import get_user_model  # only if asked: auth may not be installed

            model = get_user_model()
            try:
                user = model._default_manager.get_by_natural_key(options["user"])
            except model.DoesNotExist as exc:
                raise CommandError(f"No user {options['user']!r}.") from exc
            key = user_key(user)
        elif options["session"] is not None:
            key = session_key(options["session"])
        try:
            revoke(channel=options["channel"], key=key)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Revoked streams (channel={options['channel']!r}, key={key!r}).")
