"""Each built-in guardrail type on its own."""

from __future__ import annotations

import pytest

from simple_gateway.guardrails.base import Outcome, Stage
from simple_gateway.guardrails.builtin.pii import iban_valid, luhn_valid
from tests.unit.guardrails.helpers import FakeHTTP, one, subject


def test_keywords_match_whole_words_case_insensitively() -> None:
    check = one({"type": "keywords", "words": ["secret plan", "x"]})
    assert check.check(subject("the SECRET  plan")).outcome == Outcome.PASS  # two spaces
    assert check.check(subject("our Secret Plan")).outcome == Outcome.BLOCK
    assert check.check(subject("secretplan and xylophone")).outcome == Outcome.PASS


def test_keywords_redact_and_replace() -> None:
    redact = one({"type": "keywords", "words": ["bad"], "action": "redact"})
    verdict = redact.check(subject("a bad day", "fine"))
    assert (verdict.outcome, verdict.parts) == (Outcome.REDACT, ("a [REDACTED] day", "fine"))
    replace = one({"type": "keywords", "words": ["bad"], "action": "replace", "replacement": "ok"})
    assert replace.check(subject("a bad day", "fine")).parts == ("ok", "fine")


def test_regex_redacts_each_match_with_its_replacement() -> None:
    check = one({"type": "regex", "pattern": r"\d{3}", "action": "redact", "replacement": "#"})
    assert check.check(subject("123 and 4567")).parts == ("# and #7",)


@pytest.mark.parametrize(
    ("text", "placeholder"),
    [
        ("write to ann.lee+x@mail.example.co.uk today", "<EMAIL>"),
        ("call +1 (415) 555-0134 now", "<PHONE>"),
        ("card 4111-1111-1111-1111 ok", "<CREDIT_CARD>"),
        ("iban GB82 WEST 1234 5698 7654 32 ok", "<IBAN>"),
        ("ssn 123-45-6789 ok", "<SSN>"),
    ],
)
def test_pii_finds_and_redacts_each_entity(text: str, placeholder: str) -> None:
    check = one({"type": "pii", "action": "redact"})
    verdict = check.check(subject(text))
    assert verdict.outcome == Outcome.REDACT
    assert placeholder in verdict.parts[0]


def test_pii_checks_numbers_rather_than_guessing() -> None:
    assert luhn_valid("4111 1111 1111 1111") and not luhn_valid("4111 1111 1111 1112")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and not iban_valid(
        "DE89 3704 0044 0532 0130 01"
    )
    check = one({"type": "pii", "entities": ["credit_card", "iban"]})
    assert check.check(subject("order 4111 1111 1111 1112")).outcome == Outcome.PASS
    assert check.check(subject("DE89 3704 0044 0532 0130 01")).outcome == Outcome.PASS
    assert check.check(subject("DE89370400440532013000")).outcome == Outcome.BLOCK


def test_pii_only_looks_for_the_entities_listed() -> None:
    check = one({"type": "pii", "entities": ["email"]})
    assert check.check(subject("call 415 555 0134")).outcome == Outcome.PASS
    assert check.check(subject("a@b.io")).reason == "found email"


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-" + "a" * 40,
        "sk-ant-api03-" + "b" * 40,
        "AKIAABCDEFGHIJKLMNOP",
        "ghp_" + "c" * 36,
        "xoxb-1234567890-abcdef",
        "AIza" + "d" * 35,
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
    ],
)
def test_secrets_finds_well_known_formats(secret: str) -> None:
    check = one({"type": "secrets", "action": "redact"})
    verdict = check.check(subject(f"here: {secret} end"))
    assert verdict.outcome == Outcome.REDACT
    assert verdict.parts == ("here: <SECRET> end",)
    assert secret not in (verdict.reason or "")


def test_secrets_leave_ordinary_text_alone() -> None:
    check = one({"type": "secrets"})
    assert check.check(subject("ask about sk-learn and skeleton keys")).outcome == Outcome.PASS


def test_max_size_counts_characters_and_estimated_tokens() -> None:
    chars = one({"type": "max_size", "max_chars": 10})
    assert chars.check(subject("12345", "12345")).outcome == Outcome.PASS
    assert chars.check(subject("12345", "123456")).outcome == Outcome.BLOCK
    tokens = one({"type": "max_size", "max_tokens": 2})
    assert tokens.check(subject("1234567")).outcome == Outcome.PASS
    assert tokens.check(subject("123456789")).outcome == Outcome.BLOCK


def test_model_allowlist_takes_glob_patterns() -> None:
    check = one({"type": "model_allowlist", "models": ["gpt-4o*", "claude-3-5-*"]})
    assert check.check(subject("x", model="gpt-4o-mini")).outcome == Outcome.PASS
    assert check.check(subject("x", model="gpt-3.5")).reason == "model 'gpt-3.5' is not allowed"
    assert check.check(subject("x", model=None)).outcome == Outcome.BLOCK


def test_json_schema_validates_each_reply() -> None:
    schema = {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}
    check = one({"type": "json_schema", "schema": schema}, stage="output")
    out = Stage.OUTPUT
    assert check.check(subject('{"a": 1}', stage=out)).outcome == Outcome.PASS
    assert check.check(subject('{"a": "x"}', stage=out)).reason.startswith("at a:")
    assert check.check(subject("not json", stage=out)).reason == "text 1 is not JSON"


def test_webhook_posts_the_documented_payload_and_reads_the_verdict() -> None:
    http = FakeHTTP({"verdict": "pass", "text": "rewritten"})
    check = one({"type": "webhook", "url": "http://hook.invalid/c", "timeout": "2s"}, http=http)
    verdict = check.check(subject("original"))
    assert (verdict.outcome, verdict.parts) == (Outcome.REDACT, ("rewritten",))
    url, payload, timeout, _ = http.posts[0]
    assert (url, timeout) == ("http://hook.invalid/c", 2.0)
    assert set(payload) >= {"guardrail", "stage", "text", "request_id", "provider", "model", "path"}
    http.answer = {"verdict": "block", "reason": "no"}
    assert check.check(subject("x")).reason == "no"
    http.answer = {"verdict": "maybe"}
    with pytest.raises(ValueError, match="must answer"):
        check.check(subject("x"))


def test_moderation_blocks_flagged_categories_or_scores_over_a_threshold() -> None:
    answer = {
        "results": [
            {
                "flagged": True,
                "categories": {"hate": False, "violence": True},
                "category_scores": {"hate": 0.6, "violence": 0.95},
            }
        ]
    }
    http = FakeHTTP(answer)
    entry = {"type": "openai_moderation", "api_key": "sk-mod", "categories": ["hate"]}
    assert one(entry, http=http).check(subject("x")).outcome == Outcome.PASS
    assert one({**entry, "categories": ["violence"]}, http=http).check(subject("x")).score == 0.95
    assert one({**entry, "threshold": 0.5}, http=http).check(subject("x")).reason == (
        "flagged for hate"
    )
    url, payload, _, headers = http.posts[0]
    assert url == "http://mock.invalid/v1/moderations" and payload["input"] == "x"
    assert headers == {"Authorization": "Bearer sk-mod"}
    assert "sk-mod" not in repr(one(entry, http=http))


def test_llm_judge_reads_pass_or_block_in_the_providers_api_shape() -> None:
    http = FakeHTTP({"content": [{"type": "text", "text": "BLOCK: rude"}]})
    judge = one(
        {"type": "llm_judge", "provider": "anthropic", "model": "claude-x", "api_key": "k"},
        http=http,
    )
    assert judge.check(subject("hello")).reason == "rude"
    url, payload, _, headers = http.posts[0]
    assert url == "http://claude.invalid/v1/messages" and headers["x-api-key"] == "k"
    assert "hello" in payload["messages"][0]["content"]
    http.answer = {"choices": [{"message": {"content": "PASS"}}]}
    openai_judge = one({"type": "llm_judge", "model": "gpt-x", "api_key": "k"}, http=http)
    assert openai_judge.check(subject("hi")).outcome == Outcome.PASS
    http.answer = {"choices": [{"message": {"content": "maybe"}}]}
    with pytest.raises(ValueError, match="neither PASS nor BLOCK"):
        openai_judge.check(subject("hi"))


def test_an_outbound_failure_names_no_query_string() -> None:
    from simple_gateway.guardrails.http import OutboundError, OutboundHTTP

    http = OutboundHTTP()
    try:
        with pytest.raises(OutboundError) as failed:
            # a port nobody listens on (1 is privileged and unused on test machines)
            http.post_json("http://127.0.0.1:1/check?token=s3cr3t-value", {}, timeout=1.0)
    finally:
        http.close()
    assert "s3cr3t" not in str(failed.value)
    assert "http://127.0.0.1:1/check could not be reached" in str(failed.value)
