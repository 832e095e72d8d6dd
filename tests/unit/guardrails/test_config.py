"""The guardrails section: what it accepts, and errors that name the entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from simple_gateway.guardrails.config import Match, parse_duration, parse_size
from simple_gateway.preflight import preflight
from simple_gateway.settings import SettingsError, load_settings
from tests.unit.guardrails.helpers import config


def test_durations_and_sizes() -> None:
    assert parse_duration("300ms", "t") == 0.3
    assert parse_duration("2s", "t") == parse_duration(2, "t") == 2.0
    assert parse_size("4MiB", "s") == 4 * 1024 * 1024
    with pytest.raises(ValueError, match="duration"):
        parse_duration("soon", "t")


def test_entries_keep_their_policy() -> None:
    built = config(
        {
            "timeout": "1s",
            "input": [
                {"name": "a", "type": "secrets", "priority": 2, "mode": "monitor"},
                {"name": "b", "type": "pii", "on_error": "allow", "respond": "completion"},
            ],
            "output": [{"name": "c", "type": "keywords", "words": ["x"], "stream": "buffer"}],
        }
    )
    a, b = built.input
    assert (a.priority, a.timeout, a.enforced) == (2, 1.0, False)
    assert (b.on_error, b.respond, b.status) == ("allow", "completion", 400)
    assert built.output[0].stream == "buffer"
    assert built.priorities() == [0, 2]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "type": "nope"}, r"guardrails.input\[0\] \(x\): unknown type 'nope'"),
        ({"name": "x", "type": "regex", "pattern": "("}, r"\(x\): bad regex"),
        ({"name": "x", "type": "keywords"}, r"\(x\): 'words' is required"),
        ({"name": "x", "type": "pii", "entities": ["dna"]}, r"\(x\): unknown entity 'dna'"),
        ({"name": "x", "type": "pii", "action": "replace"}, r"action 'replace' is not supported"),
        ({"name": "x", "type": "secrets", "colour": 1}, r"unknown key 'colour'"),
        ({"name": "x", "type": "secrets", "timeout": "later"}, r"'timeout'"),
        ({"name": "x", "type": "openai_moderation", "api_key": ""}, r"\(x\): no API key"),
        ({"type": "secrets"}, r"guardrails.input\[0\]: 'name' is required"),
        ({"name": "x", "type": "no.such.module:Check"}, r"cannot import no.such.module"),
    ],
)
def test_a_bad_entry_is_named(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config({"input": [entry]})


def test_duplicate_names_are_refused() -> None:
    entries = [{"name": "x", "type": "secrets"}, {"name": "x", "type": "pii"}]
    with pytest.raises(ValueError, match="duplicate name 'x'"):
        config({"input": entries})


class Shout:
    """A user's own guardrail, loaded by dotted path."""

    def __init__(self, options: object) -> None:
        self.name = options.name  # type: ignore[attr-defined]
        self.stage = options.stage  # type: ignore[attr-defined]
        self.priority = options.priority  # type: ignore[attr-defined]
        self.level = options.get("level", 1)  # type: ignore[attr-defined]

    def check(self, subject: object) -> object:
        raise NotImplementedError


def test_a_custom_class_loads_from_a_dotted_path() -> None:
    built = config({"input": [{"name": "s", "type": f"{__name__}:Shout", "level": 3}]})
    assert isinstance(built.input[0].guardrail, Shout)
    assert built.input[0].guardrail.level == 3


def test_match_scopes_by_glob() -> None:
    match = Match(providers=("openai",), paths=("/v1/chat/*",), models=("gpt-4*",))
    assert match.applies("openai", "/v1/chat/completions", "gpt-4o")
    assert not match.applies("openai", "/v1/embeddings", "gpt-4o")
    assert not match.applies("openai", "/v1/chat/completions", "o1")
    assert Match().applies("any", "/x", None)


def test_preflight_stops_the_start_naming_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "guardrails:\n  input:\n"
        '    - {name: moderation, type: openai_moderation, api_key: "${UNSET_KEY_VAR}"}\n'
    )
    settings = load_settings(environ={}, config_path=str(path), dotenv_path=None)
    with pytest.raises(SettingsError, match=r"guardrails.input\[0\] \(moderation\): no API key"):
        preflight(settings)
