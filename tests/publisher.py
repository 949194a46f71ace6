"""A publisher in a process of its own: `python -m tests.publisher CHANNEL[,CHANNEL...] COUNT INTERVAL`.

Publishes COUNT events {"seq": i} round-robin over the channels, INTERVAL seconds apart, and prints
one line per event: "<id> <channel> <seq>".
"""

import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")
django.setup()

from django_sse import publish  # noqa: E402


def main() -> None:
    channels, count, interval = sys.argv[1].split(","), int(sys.argv[2]), float(sys.argv[3])
    for seq in range(count):
        channel = channels[seq % len(channels)]
        event = publish(channel, {"seq": seq})
        print(event.id, channel, seq, flush=True)
        time.sleep(interval)


if __name__ == "__main__":
    main()
