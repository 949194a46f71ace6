"""``manage.py sse_check URL``: how a live event stream is delivered, judged from what arrives.

A shell over :mod:`django_sse.diagnostics`: it records the stream (and the
reconnection with ``Last-Event-ID``) with :func:`~django_sse.diagnostics.run`,
judges the recordings with :func:`~django_sse.diagnostics.diagnose` and
prints each finding with its code, likely cause and fix. Best against the
diagnostic stream (``django_sse.urls``), whose events carry the time they
were sent.

Exit status: 0 passed (warnings allowed unless ``--strict``), 1 a failure
(events held back, compression that breaks clients, not an event stream, the
stream cut, ``Last-Event-ID`` lost), 2 not checked (no connection, or too few
events to judge).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_sse import __version__
from django_sse.diagnostics import (
    DEFAULT_DURATION,
    EXIT_FAILED,
    EXIT_NOT_CHECKED,
    FAIL,
    INFO,
    OK,
    TOKEN_HEADER,
    WARN,
    Report,
    diagnose,
    diagnostics_token,
    run,
)


class Command(BaseCommand):
    """``sse_check URL``: record a live event stream, judge its delivery, print the findings."""

    help = (
        "Connect to a live event stream (directly or through proxies) and report how its events are "
        "delivered. Exit status: 0 passed, 1 failed, 2 not checked."
    )
    requires_system_checks: list[str] = []  # it checks a live deployment, not this project's settings

    def add_arguments(self, parser: CommandParser) -> None:
        """The URL and the options (see docs/api/diagnostics.rst)."""
        parser.add_argument("url", help="the stream's URL, best the diagnostic stream (django_sse.urls)")
        parser.add_argument(
            "--duration",
            type=float,
            help=f"seconds to read the stream (default {DEFAULT_DURATION:g}; diagnostic stream: all of it)",
        )
        parser.add_argument(
            "--token",
            help="the diagnostics token (default: $DJANGO_SSE_DIAGNOSTICS_TOKEN, else "
            "DJANGO_SSE['DIAGNOSTICS_TOKEN'])",
        )
        parser.add_argument(
            "-H",
            "--header",
            action="append",
            default=[],
            metavar="'NAME: VALUE'",
            help="a request header to send (repeatable), e.g. a session cookie",
        )
        parser.add_argument("--no-reconnect", action="store_true", help="do not reconnect with Last-Event-ID")
        parser.add_argument("--insecure", action="store_true", help="do not verify the TLS certificate")
        parser.add_argument("--strict", action="store_true", help="fail (exit status 1) on warnings too")

    def handle(self, *args: Any, **options: Any) -> None:
        """Record, judge, print; ``CommandError`` with exit status 1 or 2 unless the check passed."""
        headers = {
            "Accept": "text/event-stream",
            "Cache-Control": "no-cache",
            # What browsers send, so that compression on the way shows.
            "Accept-Encoding": "gzip, deflate, br",
            "User-Agent": f"django-sse-check/{__version__}",
        }
        token = options["token"] or os.environ.get("DJANGO_SSE_DIAGNOSTICS_TOKEN") or diagnostics_token()
        if token:
            headers[TOKEN_HEADER] = token
        for line in options["header"]:
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise CommandError(
                    f"--header must be 'Name: value', got {line!r}", returncode=EXIT_NOT_CHECKED
                )
            for existing in [k for k in headers if k.lower() == name.strip().lower()]:
                del headers[existing]
            headers[name.strip()] = value.strip()
        if options["duration"] is not None and options["duration"] <= 0:
            raise CommandError("--duration must be positive", returncode=EXIT_NOT_CHECKED)
        first, again = run(
            options["url"],
            headers=headers,
            duration=options["duration"],
            reconnect=not options["no_reconnect"],
            insecure=options["insecure"],
        )
        report = diagnose(first, again)
        self.print_report(report)
        status = report.exit_status(strict=options["strict"])
        if status == EXIT_FAILED:
            raise CommandError("the stream is not delivered as it should be (see above).", returncode=status)
        if status == EXIT_NOT_CHECKED:
            raise CommandError(f"not checked: {report.not_checked}.", returncode=status)

    def print_report(self, report: Report) -> None:
        """The facts, then each finding as ``LEVEL [code] text`` with its fix, then the verdict."""
        for line in report.facts:
            self.stdout.write(line)
        self.stdout.write("")
        styles: dict[str, Callable[[str], str]] = {
            OK: self.style.SUCCESS,
            WARN: self.style.WARNING,
            FAIL: self.style.ERROR,
            INFO: str,
        }
        for finding in report.findings:
            head, *rest = finding.text.split("\n")
            self.stdout.write(styles[finding.level](f"{finding.level:<5} ") + f"[{finding.code}] {head}")
            for line in rest:
                self.stdout.write(f"      {line}")
            fixes = finding.fix.split("\n") if finding.fix else []
            if len(fixes) == 1:
                self.stdout.write(f"      Fix: {fixes[0]}")
            elif fixes:
                self.stdout.write("      Fixes, in the same order:")
                for line in fixes:
                    self.stdout.write(f"        {line}")
        fails = sum(f.level == FAIL for f in report.findings)
        warns = sum(f.level == WARN for f in report.findings)
        self.stdout.write("")
        if fails:
            self.stdout.write(self.style.ERROR(f"FAILED: {fails} failure(s), {warns} warning(s)."))
        elif report.not_checked:
            self.stdout.write(self.style.WARNING(f"NOT CHECKED: {report.not_checked}."))
        else:
            self.stdout.write(self.style.SUCCESS(f"PASSED with {warns} warning(s)."))
