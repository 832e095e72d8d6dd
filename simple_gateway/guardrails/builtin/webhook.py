"""`webhook`: asks an HTTP service of yours.

POSTs `{"guardrail", "stage", "text", "texts", "request_id", "provider", "model", "path"}`
and reads `{"verdict": "pass" | "block", "reason", "text"}`. A `text` different from the
one sent replaces it (for a subject of several parts, answer `texts`, one per part); on
input that is recorded as a redaction, on output as a replacement. Headers you configure
(an Authorization, say) are sent and never logged or stored.
"""

from __future__ import annotations

from typing import Any

from simple_gateway.guardrails.base import Options, Outcome, Stage, Subject, Verdict


class Webhook:
    def __init__(self, options: Options) -> None:
        self.name = options.name
        self.stage = options.stage
        self.priority = options.priority
        url = str(options.require("url"))
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"'url' must be an http(s) URL, got {url!r}")
        headers = options.get("headers") or {}
        if not isinstance(headers, dict):
            raise ValueError("'headers' must be a mapping")
        self.url = url
        self.headers = {str(k): str(v) for k, v in headers.items()}
        self.timeout = options.timeout
        self.http = options.services.http

    def check(self, subject: Subject) -> Verdict:
        payload = {
            "guardrail": self.name,
            "stage": str(subject.stage),
            "text": subject.text,
            "texts": list(subject.parts),
            "request_id": subject.request_id,
            "provider": subject.provider,
            "model": subject.model,
            "path": subject.path,
        }
        answer = self.http.post_json(self.url, payload, self.timeout, self.headers)
        if not isinstance(answer, dict) or answer.get("verdict") not in ("pass", "block"):
            raise ValueError('the webhook must answer {"verdict": "pass" | "block"}')
        reason = answer.get("reason") if isinstance(answer.get("reason"), str) else None
        score = answer.get("score") if isinstance(answer.get("score"), int | float) else None
        if answer["verdict"] == "block":
            return Verdict.blocked(reason or "the webhook said block", score)
        parts = _new_parts(answer, subject)
        if parts is None or parts == subject.parts:
            return Verdict.passed(score)
        outcome = Outcome.REDACT if subject.stage == Stage.INPUT else Outcome.REPLACE
        return Verdict(outcome, reason or "the webhook changed the text", score, parts)


def _new_parts(answer: dict[str, Any], subject: Subject) -> tuple[str, ...] | None:
    texts = answer.get("texts")
    if isinstance(texts, list) and all(isinstance(t, str) for t in texts):
        if len(texts) != len(subject.parts):
            raise ValueError(f"'texts' has {len(texts)} items for {len(subject.parts)} parts")
        return tuple(texts)
    text = answer.get("text")
    if not isinstance(text, str) or text == subject.text:
        return None
    if len(subject.parts) != 1:
        raise ValueError("answered 'text' for a subject of several parts: answer 'texts'")
    return (text,)
