"""A publisher in a process of its own: `python -m tests.publisher CHANNELS COUNT INTERVAL [HOLD]`.

Publishes COUNT events {"seq": i, "by": pid, "t": time.time()} round-robin over the comma-separated
CHANNELS, INTERVAL seconds apart, and prints one line per event: "<id> <channel> <seq>". With HOLD,
each publish is inside a transaction that commits HOLD seconds after it (a slow request or task):
its id is given early and committed late.
"""

import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")
django.setup()

from django.db import transaction  # noqa: E402

from django_sse import publish  # noqa: E402


def main() -> None:
    channels, count, interval = sys.argv[1].split(","), int(sys.argv[2]), float(sys.argv[3])
    hold = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    tag = os.getpid()
    for seq in range(count):
        channel = channels[seq % len(channels)]
        if hold:
            with transaction.atomic():
                event = publish(channel, {"seq": seq, "by": tag, "t": time.time()})
                time.sleep(hold)
        else:
            event = publish(channel, {"seq": seq, "by": tag, "t": time.time()})
        print(event.id, channel, seq, flush=True)
        time.sleep(interval)


if __name__ == "__main__":
    main()
