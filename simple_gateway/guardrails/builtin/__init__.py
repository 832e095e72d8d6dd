"""The built-in guardrail types, one module each, registered like anyone's own."""

from __future__ import annotations

from simple_gateway.guardrails.registry import register_guardrail_type


def register_builtins() -> None:
    from simple_gateway.guardrails.builtin import (
        json_schema,
        keywords,
        llm_judge,
        max_size,
        model_allowlist,
        openai_moderation,
        pii,
        regex,
        secrets,
        webhook,
    )

    register_guardrail_type("keywords", keywords.Keywords)
    register_guardrail_type("regex", regex.Regex)
    register_guardrail_type("pii", pii.PII)
    register_guardrail_type("secrets", secrets.Secrets)
    register_guardrail_type("max_size", max_size.MaxSize)
    register_guardrail_type("model_allowlist", model_allowlist.ModelAllowlist)
    register_guardrail_type("json_schema", json_schema.JSONSchema)
    register_guardrail_type("webhook", webhook.Webhook)
    register_guardrail_type("openai_moderation", openai_moderation.OpenAIModeration)
    register_guardrail_type("llm_judge", llm_judge.LLMJudge)
