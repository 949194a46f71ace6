"""A publisher in a process of its own: `python -m tests.publisher CHANNELS COUNT INTERVAL [HOLD]`.

Publishes COUNT events {"seq": i, "by": pid, "t": time.time()} round-robin over the comma-separated
CHANNELS, INTERVAL seconds apart, and prints one line per event: "<id> <channel> <seq>". With HOLD,
each publish is inside a transaction that commits HOLD seconds after it (a slow request or task):
its id is given early and committed late.

With SSE_TEST_PUBLISH_RETRY=1 (a database restart under it), a publish that fails is tried again
until it succeeds, for up to a minute, each failure said on stderr; a PublishError (stored, not
announced) counts as published.
"""

import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")
django.setup()

from django.db import connections, transaction  # noqa: E402

from django_sse import PublishError, publish  # noqa: E402
from django_sse.event import Event  # noqa: E402

RETRY = os.environ.get("SSE_TEST_PUBLISH_RETRY") == "1"


def publish_once(channel: str, data: dict, hold: float) -> Event:
    if hold:
        with transaction.atomic():
            event = publish(channel, data)
            time.sleep(hold)
        return event
    return publish(channel, data)


def publish_retrying(channel: str, data: dict, hold: float) -> Event:
    deadline = time.monotonic() + 60
    while True:
        try:
            return publish_once(channel, data, hold)
        except PublishError as error:
            print("stored, not announced:", error, file=sys.stderr, flush=True)
            return error.event
        except Exception as error:
            if time.monotonic() > deadline:
                raise
            print("publish failed, retrying:", error, file=sys.stderr, flush=True)
            connections.close_all()
            time.sleep(0.1)


def main() -> None:
    channels, count, interval = sys.argv[1].split(","), int(sys.argv[2]), float(sys.argv[3])
    hold = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    tag = os.getpid()
    for seq in range(count):
        channel = channels[seq % len(channels)]
        data = {"seq": seq, "by": tag, "t": time.time()}
        event = publish_retrying(channel, data, hold) if RETRY else publish_once(channel, data, hold)
        print(event.id, channel, seq, flush=True)
        time.sleep(interval)


if __name__ == "__main__":
    main()
