from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.core.management import CommandError, call_command

from django_sse import Event, apublish, publish
from django_sse.models import StoredEvent
from django_sse.publishing import PRUNE_EVERY, prune_history


@pytest.mark.django_db
def test_publish_stores_and_returns_the_event_with_its_id():
    event = publish("news", {"headline": "hi"}, event="story")
    assert isinstance(event, Event) and event.id is not None
    row = StoredEvent.objects.get(id=id_of(event))
    assert (row.channel, row.event, row.data) == ("news", "story", '{"headline": "hi"}')


@pytest.mark.django_db
def test_apublish():
    event = async_to_sync(apublish)("news", "text")
    assert StoredEvent.objects.get(id=id_of(event)).data == "text"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("channel", "kwargs", "error"),
    [
        ("bad name", {}, ValueError),
        ("ok", {"event": "a\nb"}, ValueError),
        ("ok", {"data": object()}, TypeError),
    ],
)
def test_bad_input_raises_and_stores_nothing(channel, kwargs, error):
    with pytest.raises(error):
        publish(channel, kwargs.pop("data", "x"), **kwargs)
    assert not StoredEvent.objects.exists()


@pytest.mark.django_db
def test_history_is_pruned_in_passing(settings):
    settings.DJANGO_SSE = {"HISTORY_MAX_EVENTS": 10}
    for i in range(PRUNE_EVERY * 2):
        publish("c", i)
    assert StoredEvent.objects.count() <= 10 + PRUNE_EVERY
    prune_history()
    assert StoredEvent.objects.count() == 10


@pytest.mark.django_db
def test_history_off_stores_nothing_and_ids_still_increase(settings):
    settings.DJANGO_SSE = {"HISTORY": False}
    ids = [id_of(publish("c", i)) for i in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert not StoredEvent.objects.exists()


@pytest.mark.django_db
def test_commands(capsys):
    call_command("sse_publish", "c", '{"a": 1}', "--json", "--event", "e")
    assert "Published id" in capsys.readouterr().out
    assert StoredEvent.objects.get().data == '{"a": 1}'
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("sse_publish", "c", "{", "--json")
    with pytest.raises(CommandError, match="Invalid channel name"):
        call_command("sse_publish", "bad name", "x")
    call_command("sse_prune")
    assert "Deleted 0 stored events." in capsys.readouterr().out


def id_of(event: Event) -> int:
    assert event.id is not None
    return int(event.id)


@pytest.mark.parametrize("event", [None, "note"])
def test_publishing_no_data_is_refused_with_a_clear_reason(event):
    with pytest.raises(ValueError, match="publish\\(\\) needs data: an event without data is never fired"):
        publish("a", None, event=event)
