"""revoke(): its validation, what it stores, the default keys, and revocation at logout."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory

from django_sse import EventStreamView, revoke
from django_sse.delivery.hub import REVOCATION_CHANNEL
from django_sse.models import StoredEvent
from django_sse.revocation import revoke_session_on_logout, session_key, user_key

pytestmark = pytest.mark.django_db(transaction=True)


def stored_revocations():
    rows = StoredEvent.objects.filter(channel=REVOCATION_CHANNEL).order_by("id")
    return [json.loads(row.data or "") for row in rows]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({}, "needs a channel, a key"), ({"channel": "a b"}, "channel"), ({"key": ""}, "non-empty str")],
)
def test_bad_revocations_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        revoke(**kwargs)
    assert stored_revocations() == []


def test_a_revocation_is_stored_in_order_with_events_and_never_replayed():
    from django_sse import history, publish

    publish("room", {"n": 1})
    revoke(channel="room", key="user:7")
    publish("room", {"n": 2})
    assert stored_revocations() == [{"channel": "room", "key": "user:7"}]
    assert [e.data for _, e in history.events_after(["room"], 0, 10)] == ['{"n": 1}', '{"n": 2}']


def keys(request) -> list[str]:
    return list(EventStreamView().get_revocation_keys(request))  # type: ignore[arg-type]


def test_the_default_keys_are_the_session_and_the_logged_in_user():
    user = get_user_model().objects.create(username="u")
    session = SessionStore()
    session.create()
    request = RequestFactory().get("/")
    request.session, request.user = session, user
    key = session.session_key or ""
    assert keys(request) == [session_key(key), user_key(user)]
    request.user = AnonymousUser()
    assert keys(request) == [session_key(key)]
    request.session = SessionStore()  # no cookie: no key, and no query to find out
    assert keys(request) == []


def test_logging_out_revokes_the_session(client):
    client.force_login(get_user_model().objects.create(username="v"))
    key = client.session.session_key
    client.logout()  # django.contrib.auth.logout(), which sends user_logged_out
    assert stored_revocations() == [{"channel": None, "key": session_key(key)}]


def test_logging_out_without_a_session_revokes_nothing():
    revoke_session_on_logout(sender=None, request=RequestFactory().get("/"))
    assert stored_revocations() == []
