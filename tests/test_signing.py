"""Signed subscription tokens: sign/verify, and EventStreamView.subscription_token (Django's test client)."""

from __future__ import annotations

import dataclasses
import datetime
import re
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core import signing as django_signing
from django.test import Client, RequestFactory
from django.urls import path

from django_sse import EventStreamView, publish, revoke, signing
from django_sse.revocation import user_key
from django_sse.signing import (
    MAX_TOKEN_LENGTH,
    SignedSubscription,
    SubscriptionTokenError,
    sign_subscription,
    verify_subscription,
)
from django_sse.testing import read_events, when_subscribed
from tests.sse_client import publish_when_subscribed

# sign/verify


def test_round_trip():
    before = datetime.datetime.now(datetime.timezone.utc)
    token = sign_subscription(["chat", "room.1", "chat"])
    subscription = verify_subscription(token)
    assert subscription.channels == ("chat", "room.1")  # in order, each once
    assert subscription.user_id is None
    assert subscription.expires.tzinfo is datetime.timezone.utc
    expected = before + datetime.timedelta(seconds=3600)
    assert abs((subscription.expires - expected).total_seconds()) < 5


def test_a_token_is_url_safe():
    token = sign_subscription(["a" * 80, "b.c-d_e"], user="x y/z?&=")
    assert re.fullmatch(r"[A-Za-z0-9_.:-]+", token)
    assert quote(token, safe=":") == token


def test_many_channels_are_compressed():
    names = [f"room.{i}" for i in range(20)]
    token = sign_subscription(names)
    assert token.startswith(".")  # django.core.signing's mark of a compressed payload
    assert verify_subscription(token).channels == tuple(names)


@pytest.mark.parametrize("expires_in", [60, 60.0, datetime.timedelta(minutes=1)])
def test_expires_in_seconds_or_a_timedelta(monkeypatch, expires_in):
    monkeypatch.setattr(signing, "_now", lambda: 1_000_000.0)
    token = sign_subscription(["a"], expires_in=expires_in)
    assert verify_subscription(token).expires == datetime.datetime.fromtimestamp(
        1_000_060, tz=datetime.timezone.utc
    )


def test_expiry_by_the_clock(monkeypatch):
    clock = [1_000_000.0]
    monkeypatch.setattr(signing, "_now", lambda: clock[0])
    token = sign_subscription(["a"], expires_in=60)
    clock[0] = 1_000_059.999
    assert verify_subscription(token).channels == ("a",)
    clock[0] = 1_000_060.0
    with pytest.raises(SubscriptionTokenError) as error:
        verify_subscription(token)
    assert error.value.reason == "expired"
    assert str(error.value) == "Subscription token expired."


@pytest.mark.parametrize("expires_in", [-1, 0, datetime.timedelta(seconds=-5)])
def test_expired(expires_in):
    token = sign_subscription(["a"], expires_in=expires_in)
    with pytest.raises(SubscriptionTokenError) as error:
        verify_subscription(token)
    assert error.value.reason == "expired"


def one_char_changed(token: str, index: int) -> str:
    old = token[index]
    return token[:index] + ("A" if old != "A" else "B") + token[index + 1 :]


@pytest.mark.parametrize("where", ["payload", "signature"])
def test_tampered(where):
    token = sign_subscription(["a"], user=1)
    separator = token.rindex(":")
    index = separator // 2 if where == "payload" else len(token) - 2
    with pytest.raises(SubscriptionTokenError) as error:
        verify_subscription(one_char_changed(token, index))
    assert error.value.reason == "tampered"
    assert "tampered" in str(error.value)


def test_tampered_with_another_salt_or_key(settings):
    with pytest.raises(SubscriptionTokenError, match="tampered"):
        verify_subscription(sign_subscription(["a"], salt="other"))
    assert verify_subscription(sign_subscription(["a"], salt="other"), salt="other").channels == ("a",)
    token = sign_subscription(["a"])
    settings.SECRET_KEY = "another-key"
    with pytest.raises(SubscriptionTokenError, match="tampered"):
        verify_subscription(token)
    settings.SECRET_KEY_FALLBACKS = ["tests-only"]  # a rotated key still verifies
    assert verify_subscription(token).channels == ("a",)


def test_a_signed_value_of_someone_else_is_refused_not_an_error():
    # Signed with another salt (Signer's default): a bad signature here.
    with pytest.raises(SubscriptionTokenError, match="tampered"):
        verify_subscription(django_signing.Signer().sign_object({"c": ["a"]}))
    # signing.dumps() adds a timestamp: not the shape of a subscription token.
    with pytest.raises(SubscriptionTokenError, match="malformed"):
        verify_subscription(django_signing.dumps({"c": ["a"]}, salt=signing.DEFAULT_SALT))


@pytest.mark.parametrize(
    "payload",
    [
        {"x": 1},
        ["a"],
        "a",
        {"c": [], "e": 2e9},
        {"c": "a", "e": 2e9},
        {"c": ["bad name"], "e": 2e9},
        {"c": [1], "e": 2e9},
        {"c": ["a"]},
        {"c": ["a"], "e": "2e9"},
        {"c": ["a"], "e": True},
        {"c": ["a"], "e": 1e300},
        {"c": ["a"], "e": 2e9, "u": 5},
    ],
)
def test_an_authentic_payload_that_is_not_a_subscription_is_malformed(payload):
    token = django_signing.Signer(salt=signing.DEFAULT_SALT).sign_object(payload)
    with pytest.raises(SubscriptionTokenError) as error:
        verify_subscription(token)
    assert error.value.reason == "malformed"


def test_an_authentic_value_that_is_not_json_is_malformed():
    for value in ("abc", ".abc"):
        token = django_signing.Signer(salt=signing.DEFAULT_SALT).sign(value)
        with pytest.raises(SubscriptionTokenError, match="malformed"):
            verify_subscription(token)


@pytest.mark.parametrize("token", ["", "abc", "a:b:c", "a b:c", ":abc", "abc:", "ä:b", None, 12, b"a:b"])
def test_malformed(token):
    with pytest.raises(SubscriptionTokenError) as error:
        verify_subscription(token)
    assert error.value.reason == "malformed"
    assert str(error.value) == "Subscription token malformed."


def test_a_huge_token_is_malformed_without_being_decoded(monkeypatch):
    def unsign(*args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(django_signing.Signer, "unsign", unsign)
    with pytest.raises(SubscriptionTokenError, match="malformed"):
        verify_subscription("a" * MAX_TOKEN_LENGTH + ":" + "b" * 43)


def test_bad_token_errors_are_value_errors_with_a_reason():
    assert issubclass(SubscriptionTokenError, ValueError)
    assert {reason: str(SubscriptionTokenError(reason)) for reason in ("expired", "malformed")} == {
        "expired": "Subscription token expired.",
        "malformed": "Subscription token malformed.",
    }


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        (["bad name"], "Invalid channel name 'bad name'"),
        ([""], "1 to 80 characters"),
        (["a" * 81], "1 to 80 characters"),
        ([7], "must be a str"),
        ([], "at least one channel"),
        ((), "at least one channel"),
        ("chat", "must be a list of names"),
    ],
)
def test_bad_channels_are_refused(channels, message):
    with pytest.raises(ValueError, match=message):
        sign_subscription(channels)


@pytest.mark.parametrize("expires_in", [float("nan"), float("inf"), "60", None, True])
def test_bad_expiries_are_refused(expires_in):
    with pytest.raises(ValueError, match="expires_in must be"):
        sign_subscription(["a"], expires_in=expires_in)


def test_user_object_or_primary_key():
    user = get_user_model()(pk=7, username="ada")
    for value in (user, 7, "7"):
        assert verify_subscription(sign_subscription(["a"], user=value)).user_id == "7"
    assert verify_subscription(sign_subscription(["a"], user="uuid-like")).user_id == "uuid-like"
    assert verify_subscription(sign_subscription(["a"], user=None)).user_id is None


@pytest.mark.parametrize("user", [AnonymousUser(), get_user_model()(username="unsaved"), object(), True, ""])
def test_a_user_without_a_primary_key_is_refused(user):
    with pytest.raises(ValueError, match="user must"):
        sign_subscription(["a"], user=user)


def test_a_subscription_is_frozen():
    subscription = verify_subscription(sign_subscription(["a"]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        subscription.channels = ("b",)  # type: ignore[misc]


# EventStreamView.subscription_token


class TokenRoom(EventStreamView):
    subscription_token = "token"

    def get_channels(self, request, names):
        return names.split(",")

    def has_channel_permission(self, request, channel):
        subscription = request.subscription
        if channel.startswith("staff"):
            return subscription is not None and subscription.user_id == "1"
        return channel != "private"


class TokenChannels(EventStreamView):
    """Streams the token's channels: request.subscription is set before get_channels()."""

    subscription_token = "t"
    subscription_salt = "tests.other-salt"

    def get_channels(self, request):
        return request.subscription.channels if request.subscription else []


class NoTokens(EventStreamView):
    def get_channels(self, request, names):
        return names.split(",")

    def has_channel_permission(self, request, channel):
        assert not hasattr(request, "subscription")
        return True


class Urls:
    urlpatterns = [
        path("room/<str:names>/", TokenRoom.as_view()),
        path("token-channels/", TokenChannels.as_view()),
        path("no-tokens/<str:names>/", NoTokens.as_view()),
    ]


@pytest.fixture
def urls(settings):
    settings.ROOT_URLCONF = Urls
    settings.DJANGO_SSE = {"POLL_INTERVAL": 0.1}


def get(url: str, token: str | None = None, **extra):
    data = {} if token is None else {"token": token}
    return Client().get(url, data, **extra)


def refusal(response) -> tuple[int, str]:
    assert response["Content-Type"].startswith("text/plain")
    return response.status_code, response.content.decode()


view_test = pytest.mark.django_db(transaction=True)


@view_test
def test_a_valid_token_streams_its_channels(urls):
    response = get("/room/a,b/", sign_subscription(["a", "b", "c"]))
    assert response.status_code == 200
    when_subscribed(lambda: (publish("b", "one"), publish("a", "two")))
    assert [e.data for e in read_events(response, 2)] == ["one", "two"]


@view_test
def test_a_token_that_does_not_grant_a_channel_is_refused(urls):
    response = get("/room/a,b/", sign_subscription(["a"]))
    assert refusal(response) == (403, "Token does not grant channel 'b'.")


@view_test
def test_bad_tokens_are_refused_with_the_reason(urls):
    token = sign_subscription(["a"])
    assert refusal(get("/room/a/", sign_subscription(["a"], expires_in=-1))) == (
        403,
        "Subscription token expired.",
    )
    status, body = refusal(get("/room/a/", one_char_changed(token, len(token) - 2)))
    assert status == 403 and "tampered" in body
    for bad in ("", "nonsense", "x" * (MAX_TOKEN_LENGTH + 1), token + "\n"):
        assert refusal(get("/room/a/", bad)) == (403, "Subscription token malformed.")


@view_test
def test_a_valid_token_does_not_bypass_has_channel_permission(urls):
    response = get("/room/private/", sign_subscription(["private"]))
    assert refusal(response) == (403, "You may not read channel 'private'.")
    # The check sees the token's user.
    assert get("/room/staff/", sign_subscription(["staff"], user=1)).status_code == 200
    assert refusal(get("/room/staff/", sign_subscription(["staff"], user=2)))[0] == 403
    assert refusal(get("/room/staff/", sign_subscription(["staff"])))[0] == 403


@view_test
def test_invalid_names_are_still_a_400_before_the_token_check(urls):
    assert get("/room/a%20b/", sign_subscription(["a"])).status_code == 400


@view_test
def test_without_a_token_the_view_behaves_as_before(urls):
    response = get("/room/a/")
    assert response.status_code == 200
    publish_when_subscribed("a", ["one"])
    assert [e.data for e in read_events(response, 1)] == ["one"]
    assert refusal(get("/room/private/")) == (403, "You may not read channel 'private'.")
    assert refusal(get("/room/staff/"))[0] == 403  # request.subscription is None


@view_test
def test_a_view_without_subscription_token_ignores_the_parameter(urls):
    response = get("/no-tokens/a/", "nonsense")
    assert response.status_code == 200
    response.close()


@view_test
def test_get_channels_sees_the_subscription_and_the_salt_is_the_views(urls):
    token = sign_subscription(["x", "y"], salt="tests.other-salt")
    response = Client().get("/token-channels/", {"t": token})
    assert response.status_code == 200
    publish_when_subscribed("y", ["why"])
    assert [e.data for e in read_events(response, 1)] == ["why"]
    assert Client().get("/token-channels/").status_code == 204  # no token, no channels
    wrong_salt = Client().get("/token-channels/", {"t": sign_subscription(["x"])})
    assert refusal(wrong_salt)[0] == 403 and "tampered" in wrong_salt.content.decode()


@view_test
def test_the_last_event_id_resumes_with_a_token(urls):
    first = publish("a", "old").id
    publish("a", "missed")
    response = get("/room/a/", sign_subscription(["a"]), HTTP_LAST_EVENT_ID=str(first))
    assert [e.data for e in read_events(response, 1)] == ["missed"]


def keys(request) -> list[str]:
    return list(EventStreamView().get_revocation_keys(request))  # type: ignore[arg-type]


def test_the_revocation_keys_include_the_tokens_user():
    request = RequestFactory().get("/")
    request.subscription = SignedSubscription(("a",), datetime.datetime.now(datetime.timezone.utc), "7")  # type: ignore[attr-defined]
    assert keys(request) == [user_key(SimpleNamespace(pk=7))]
    request.subscription = None  # type: ignore[attr-defined]
    assert keys(request) == []


@view_test
def test_revoking_the_tokens_user_ends_the_stream(urls):
    response = get("/room/a/", sign_subscription(["a"], user=1))
    when_subscribed(lambda: revoke(key="user:1"))
    with pytest.raises(AssertionError, match="the stream ended after"):
        read_events(response, 1, timeout=10)
