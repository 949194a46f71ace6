"""PostgresBackend on its own: what publish does when NOTIFY fails, and NOTIFY's transactions.

The server tests (test_servers_postgres_backend.py) cover delivery between processes and outages.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, transaction

from django_sse import PublishError, publish
from django_sse.backends import get_backend
from django_sse.models import StoredEvent
from tests.postgres_server import Postgres, migrate
from tests.postgres_server import environment as pg_environment
from tests.servers import ROOT

BACKEND = "django_sse.backends.postgres.PostgresBackend"


def test_history_off_is_refused(settings):
    settings.DJANGO_SSE = {"BACKEND": BACKEND, "HISTORY": False}
    with pytest.raises(ImproperlyConfigured, match="needs history"):
        get_backend()


# On SQLite there is no pg_notify(): NOTIFY fails as it would with PostgreSQL gone after the commit.


@pytest.mark.django_db(transaction=True)
def test_publish_raises_publish_error_after_storing_when_it_cannot_notify(settings):
    settings.DJANGO_SSE = {"BACKEND": BACKEND}
    with pytest.raises(PublishError) as raised:
        publish("news", {"n": 1})
    stored = StoredEvent.objects.get(id=int(raised.value.event.id or 0))
    assert (stored.channel, stored.data) == ("news", '{"n": 1}')
    assert "could not NOTIFY" in str(raised.value)


@pytest.mark.django_db(transaction=True)
def test_in_a_transaction_a_failed_notify_fails_the_transaction(settings):
    settings.DJANGO_SSE = {"BACKEND": BACKEND}
    with pytest.raises(DatabaseError), transaction.atomic():
        publish("news", {"n": 1})
    assert not StoredEvent.objects.exists()  # nothing stored that nobody was told of


LISTEN_AND_PUBLISH = """
import django, psycopg
django.setup()
from django.db import connection, transaction
from django_sse import publish

listener = psycopg.connect(**{k: v for k, v in connection.get_connection_params().items()
                              if k != "cursor_factory"}, autocommit=True)
listener.execute("LISTEN django_sse")
heard = lambda: [n.payload for n in listener.notifies(timeout=0.5)]

event = publish("news", "autocommit")
print("autocommit", heard() == [event.id])
with transaction.atomic():
    event = publish("news", "in a transaction")
    print("before commit", heard() == [])
print("after commit", heard() == [event.id])
try:
    with transaction.atomic():
        publish("news", "rolled back")
        raise RuntimeError
except RuntimeError:
    pass
print("rolled back", heard() == [])
"""


@pytest.mark.xdist_group("postgres-backend")
def test_notifications_are_sent_with_the_transaction(pg: Postgres) -> None:
    """NOTIFY is transactional: listeners hear of an event when it commits, never of a rolled back one."""
    migrate(pg, "pgb_unit")
    env = {**pg_environment(pg, "pgb_unit"), "SSE_TEST_DJANGO_SSE": f'{{"BACKEND": "{BACKEND}"}}'}
    result = subprocess.run(
        [sys.executable, "-c", LISTEN_AND_PUBLISH],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:4] == [
        "autocommit True",
        "before commit True",
        "after commit True",
        "rolled back True",
    ], result.stdout + result.stderr
