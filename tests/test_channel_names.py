import pytest

from django_sse.channel_names import MAX_LENGTH, validate_channel


@pytest.mark.parametrize("name", ["a", "room.42", "user_7-feed", "A" * MAX_LENGTH])
def test_valid(name):
    assert validate_channel(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "1 to 80 characters"),
        ("a" * (MAX_LENGTH + 1), "1 to 80 characters"),
        ("room:42", "only ASCII letters"),
        ("a b", "only ASCII letters"),
        ("caf\u00e9", "only ASCII letters"),
        ("a\nb", "only ASCII letters"),
        (42, "must be a str"),
        (None, "must be a str"),
    ],
)
def test_invalid(name, message):
    with pytest.raises(ValueError, match=message):
        validate_channel(name)
