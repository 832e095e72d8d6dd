from collections import Counter

import pytest

from simple_gateway.providers.keyring import KeyRing


def test_one_key_list_and_unset_keys():
    assert KeyRing.parse("sk-1").pick() == "sk-1"
    assert KeyRing.parse(None).pick() is None
    assert KeyRing.parse("").pick() is None  # an unset ${VAR}
    ring = KeyRing.parse(["a", "b", "c"])
    assert [ring.pick() for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]


def test_weights_are_honoured_exactly_and_interleaved():
    ring = KeyRing.parse([{"key": "a", "weight": 3}, {"key": "b", "weight": 1}])
    picks = [ring.pick() for _ in range(400)]
    assert Counter(picks) == {"a": 300, "b": 100}
    assert "bb" not in "".join(picks)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([{"key": "a", "weight": 0}], r"api_key\[0\]\.weight"),
        ([{"key": "a", "wieght": 2}], "unknown key 'wieght'"),
        ([42], r"api_key\[0\]: expected a string"),
    ],
)
def test_bad_keys_are_named(value, message):
    with pytest.raises(ValueError, match=message):
        KeyRing.parse(value)
